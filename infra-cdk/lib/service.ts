import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { RustCode, rustFunction } from './code';
import { DurableOrchestrator } from './orchestrator';
import { acknowledge, BASIC_EXECUTION_ROLE, nagArn, nagArnOf } from './nag';
import * as s3 from 'aws-cdk-lib/aws-s3';

/** A handler Lambda to deploy. */
export interface DurableServiceProps {
  readonly orchestrator: DurableOrchestrator;
  /** The crate and binary of the handler Lambda. */
  readonly code: RustCode;
  /**
   * The services this Lambda serves (as its endpoint names them). Its IAM policy is scoped to
   * exactly these services' items and objects, and registration refuses a Lambda that serves
   * any other.
   */
  readonly services: string[];
  /**
   * How long its services' finished invocations are kept (metadata, journal, output), from one
   * minute to ten years. @default the orchestrator's retention
   */
  readonly retention?: Duration;
  /** @default 30 s */
  readonly timeout?: Duration;
  /** @default 256 */
  readonly memorySize?: number;
  readonly environment?: Record<string, string>;
}

/**
 * A handler Lambda served through the orchestrator: published as a version behind the alias
 * `live` (each invocation stays on the version it started on), allowed exactly what the SDK
 * does for its own services (their invocations' items, objects and payloads; dispatch events),
 * invocable by the orchestrator only, and registered through the orchestrator's admin door at
 * deploy time.
 */
export class DurableService extends Construct {
  readonly function: lambda.Function;
  readonly alias: lambda.Alias;

  constructor(scope: Construct, id: string, props: DurableServiceProps) {
    super(scope, id);
    const { orchestrator } = props;

    // A fixed name, so the orchestrator's policy can name this function without depending on it.
    const stack = Stack.of(this);
    const functionName = `${stack.stackName}-${id}`.slice(0, 64);
    const functionArn = stack.formatArn({
      service: 'lambda',
      resource: 'function',
      resourceName: functionName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    this.function = rustFunction(this, 'Function', props.code, {
      functionName,
      timeout: props.timeout ?? Duration.seconds(30),
      memorySize: props.memorySize,
      environment: props.environment,
      description: `durable-lambda handler ${props.code.binary}`,
    });
    this.alias = new lambda.Alias(this, 'Live', { aliasName: 'live', version: this.function.currentVersion });

    if (props.services.length === 0) {
      throw new Error(`${id}: a DurableService serves at least one service`);
    }
    for (const name of props.services) {
      if (!/^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(name)) {
        throw new Error(`${id}: ${JSON.stringify(name)} is not a service name`);
      }
    }
    if (props.retention !== undefined) {
      const secs = props.retention.toSeconds();
      if (secs < 60 || secs > 10 * 365 * 86_400) {
        throw new Error(`${id}: retention must be between 1 minute and 10 years`);
      }
      orchestrator.keepOutputsFor(props.retention);
    }
    const keys = (prefix: string) => props.services.map((name) => `${prefix}#${name}#*`);
    // Every item a handler may touch leads with its service (`inv#<service>#…`, see
    // docs/ARCHITECTURE.md), so `LeadingKeys` grants exactly this Lambda's services. The SDK
    // appends journal entries, completes in-process timers and flags payloads there, reads
    // whether an operator cancelled a long attempt, and checks that a workflow's run still owns
    // its invocation when it writes its state through.
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [
          'dynamodb:PutItem',
          'dynamodb:GetItem',
          'dynamodb:UpdateItem',
          'dynamodb:Query',
          'dynamodb:ConditionCheckItem',
        ],
        resources: [orchestrator.table.tableArn],
        conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': keys('inv') } },
      }),
    );
    // The metadata item of a dated invocation lives in its service's minute partition
    // (`run#<service>#…`): the SDK flags its payloads there and reads whether it was cancelled.
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
        resources: [orchestrator.table.tableArn],
        conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': keys('run') } },
      }),
    );
    // Objects and workflows: read state (applied by the orchestrator when an invocation finishes;
    // a workflow's run also updates it as it goes), and wait for, peek and complete promises.
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:Query'],
        resources: [orchestrator.table.tableArn],
        conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': keys('obj') } },
      }),
    );
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:PutObject'],
        resources: props.services.flatMap((name) => [
          orchestrator.bucket.arnForObjects(`payloads/${name}/*`),
          orchestrator.bucket.arnForObjects(`outputs/${name}/*`),
        ]),
      }),
    );
    orchestrator.kmsKey?.grantEncryptDecrypt(this.function);
    // Calls, sends and promise resumptions: `dispatch`/`resume` events to the orchestrator's
    // control door (the unqualified function; each event carries a proof for its invocation).
    this.function.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [orchestrator.functionArnByName] }),
    );
    // The orchestrator may invoke this function (its versions and alias), and only registered ones.
    orchestrator.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: [functionArn, `${functionArn}:*`],
      }),
    );

    // Registration: the orchestrator asks the new version what it serves and pins it.
    const register = new cr.AwsCustomResource(this, 'Register', {
      onUpdate: {
        service: 'Lambda',
        action: 'invoke',
        parameters: {
          FunctionName: orchestrator.adminAlias.functionArn,
          Payload: Stack.of(this).toJsonString({
            type: 'register',
            function_arn: this.alias.functionArn,
            services: props.services,
            ...(props.retention !== undefined ? { retention_secs: props.retention.toSeconds() } : {}),
          }),
        },
        physicalResourceId: cr.PhysicalResourceId.of(this.function.currentVersion.version),
      },
      policy: cr.AwsCustomResourcePolicy.fromStatements([
        new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [orchestrator.adminAlias.functionArn] }),
      ]),
      installLatestAwsSdk: false,
    });
    register.node.addDependency(this.alias);

    // cdk-nag (AwsSolutions): each finding that is a choice, and why.
    acknowledge(this.function, BASIC_EXECUTION_ROLE,
      'The AWS managed basic execution role grants CloudWatch Logs writes only, which every Lambda needs.');
    // The registration's provider function (one per stack) gets the same managed role.
    acknowledge(stack, BASIC_EXECUTION_ROLE,
      'The AWS managed basic execution role grants CloudWatch Logs writes only, which every Lambda needs.');
    const bucketArn = nagArnOf(orchestrator.bucket.node.defaultChild as s3.CfnBucket);
    for (const name of props.services) {
      for (const prefix of ['payloads', 'outputs']) {
        acknowledge(this.function, `AwsSolutions-IAM5[Resource::${bucketArn}/${prefix}/${name}/*]`,
          `The handler reads and writes its own service's (${name}) ${prefix}; object names are content hashes under the invocation.`);
      }
    }
    acknowledge(orchestrator.function, `AwsSolutions-IAM5[Resource::${nagArn(stack, 'lambda', `function:${functionName}:*`)}]`,
      'The orchestrator invokes the exact version each invocation was pinned to at registration.');
  }
}
