import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { RustCode, rustFunction } from './code';
import { DurableOrchestrator } from './orchestrator';

/** A handler Lambda to deploy. */
export interface DurableServiceProps {
  readonly orchestrator: DurableOrchestrator;
  /** The crate and binary of the handler Lambda. */
  readonly code: RustCode;
  /** @default 30 s */
  readonly timeout?: Duration;
  /** @default 256 */
  readonly memorySize?: number;
  readonly environment?: Record<string, string>;
}

/**
 * A handler Lambda served through the orchestrator: published as a version behind the alias
 * `live` (each invocation stays on the version it started on), allowed exactly what the SDK
 * does (journal items of invocations, its payloads, dispatch events), invocable by the
 * orchestrator only, and registered with the orchestrator at deploy time.
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

    // The SDK appends journal entries, completes in-process timers and flags payloads: items
    // of invocations only (DynamoDB `LeadingKeys`), never the registry or anything else.
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['dynamodb:PutItem', 'dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:Query'],
        resources: [orchestrator.table.tableArn],
        conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['inv#*'] } },
      }),
    );
    // The metadata item of a dated invocation lives in its minute's partition (`run#...`):
    // the SDK only flags its payloads there.
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['dynamodb:UpdateItem'],
        resources: [orchestrator.table.tableArn],
        conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['run#*'] } },
      }),
    );
    // Objects and workflows: read state (written only by the orchestrator, which applies it when
    // an invocation finishes), and wait for, peek and complete durable promises.
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:Query'],
        resources: [orchestrator.table.tableArn],
        conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['obj#*'] } },
      }),
    );
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:PutObject'],
        resources: [orchestrator.bucket.arnForObjects('payloads/*'), orchestrator.bucket.arnForObjects('outputs/*')],
      }),
    );
    // Calls and sends: `dispatch` events to the orchestrator.
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
          FunctionName: orchestrator.function.functionArn,
          Payload: Stack.of(this).toJsonString({ type: 'register', function_arn: this.alias.functionArn }),
        },
        physicalResourceId: cr.PhysicalResourceId.of(this.function.currentVersion.version),
      },
      policy: cr.AwsCustomResourcePolicy.fromStatements([
        new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [orchestrator.function.functionArn] }),
      ]),
      installLatestAwsSdk: false,
    });
    register.node.addDependency(this.alias);
  }
}
