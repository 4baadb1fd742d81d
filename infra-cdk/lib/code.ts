import * as path from 'path';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct } from 'constructs';

/** The repository root (this file is compiled to infra-cdk/dist/lib). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

/** Where a Rust Lambda's code comes from. */
export interface RustCode {
  /** The crate's Cargo.toml: relative to the repository root, or absolute (a crate of your own). */
  readonly manifest: string;
  /** The binary to run as `bootstrap`. */
  readonly binary: string;
}

/** Settings every Rust Lambda of this app shares. */
export interface RustFunctionSettings {
  readonly memorySize?: number;
  readonly timeout?: import('aws-cdk-lib').Duration;
  readonly environment?: Record<string, string>;
  readonly functionName?: string;
  readonly description?: string;
  /** Encrypts the environment with this key instead of an AWS-owned one. */
  readonly environmentEncryption?: import('aws-cdk-lib/aws-kms').IKey;
}

/**
 * A Rust Lambda (arm64, provided.al2023). Built with cargo-lambda through `RustFunction`, or,
 * when `DURABLE_ASSETS_DIR` is set, taken prebuilt from `<dir>/<binary>/bootstrap` (what the
 * tests and offline `cdk synth` use, so neither needs cargo-lambda nor a network).
 */
export function rustFunction(scope: Construct, id: string, code: RustCode, settings: RustFunctionSettings): lambda.Function {
  const prebuilt = process.env.DURABLE_ASSETS_DIR;
  const common = {
    architecture: lambda.Architecture.ARM_64,
    memorySize: settings.memorySize ?? 256,
    timeout: settings.timeout,
    environment: settings.environment,
    functionName: settings.functionName,
    description: settings.description,
    environmentEncryption: settings.environmentEncryption,
  };
  if (prebuilt) {
    return new lambda.Function(scope, id, {
      ...common,
      runtime: lambda.Runtime.PROVIDED_AL2023,
      handler: 'bootstrap',
      code: lambda.Code.fromAsset(path.join(prebuilt, code.binary)),
    });
  }
  return new RustFunction(scope, id, {
    ...common,
    manifestPath: path.resolve(REPO_ROOT, code.manifest),
    binaryName: code.binary,
  });
}
