import { Duration, Lazy, RemovalPolicy, Stack, ArnFormat } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import { Construct } from 'constructs';
import { rustFunction } from './code';
import { acknowledge, BASIC_EXECUTION_ROLE, nagArn, nagArnOf } from './nag';

/** Settings of the orchestrator. */
export interface DurableOrchestratorProps {
  /** How long finished invocations keep their output (and journal). @default 1 day */
  readonly retention?: Duration;
  /** Precise timers: schedules fire this much early and the orchestrator waits the rest. @default none */
  readonly timerLead?: Duration;
  /** Largest value accepted anywhere. @default 32 MiB */
  readonly maxValueBytes?: number;
  /** The orchestrator's timeout (synchronous HTTP callers wait up to this). @default 60 s */
  readonly timeout?: Duration;
  /** @default 128 */
  readonly memorySize?: number;
  /**
   * A customer-managed key that encrypts the table, the bucket (with an S3 bucket key) and the
   * orchestrator's environment; the engine's roles are granted its use. @default AWS-owned keys
   */
  readonly kmsKey?: kms.IKey;
}

/**
 * The engine: the journal table, the payload bucket, the orchestrator Lambda with an IAM-auth
 * Function URL, the EventBridge Scheduler group for durable timers and the role Scheduler uses
 * to wake the orchestrator. Handler Lambdas join with `DurableService`.
 */
export class DurableOrchestrator extends Construct {
  readonly table: dynamodb.Table;
  readonly bucket: s3.Bucket;
  readonly function: lambda.Function;
  /** The Function URL's door: the only alias that serves HTTP. */
  readonly urlAlias: lambda.Alias;
  /** The administrative door: `register` (and future admin events) only come through it. */
  readonly adminAlias: lambda.Alias;
  readonly url: lambda.FunctionUrl;
  readonly scheduleGroup: scheduler.CfnScheduleGroup;
  readonly schedulerRole: iam.Role;
  /** The customer-managed key of the table and bucket, if one was given. */
  readonly kmsKey?: kms.IKey;
  /**
   * The orchestrator's ARN built from its fixed name: policies that name it this way do not
   * depend on the function resource, so handler and orchestrator policies can name each other.
   */
  readonly functionArnByName: string;
  /** The longest retention of the orchestrator and its services: how long outputs stay in S3. */
  private longestRetention: Duration;

  constructor(scope: Construct, id: string, props: DurableOrchestratorProps = {}) {
    super(scope, id);
    const stack = Stack.of(this);
    const retention = props.retention ?? Duration.days(1);
    this.longestRetention = retention;

    this.table = new dynamodb.Table(this, 'Journal', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expires_at',
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: RemovalPolicy.RETAIN,
      ...(props.kmsKey
        ? { encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED, encryptionKey: props.kmsKey }
        : {}),
    });
    // Running invocations by lease expiry (sparse, keys only): what the sweep reads.
    this.table.addGlobalSecondaryIndex({
      indexName: 'leases',
      partitionKey: { name: 'lease_shard', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'lease_until', type: dynamodb.AttributeType.NUMBER },
      projectionType: dynamodb.ProjectionType.KEYS_ONLY,
    });
    // Invocations whose ids are not dated (keyed, idempotent, children), by creation minute and
    // shard (keys only, written once at creation): what listing reads besides the minutes'
    // partitions of dated ids.
    this.table.addGlobalSecondaryIndex({
      indexName: 'runs',
      partitionKey: { name: 'list_pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'list_sk', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.KEYS_ONLY,
    });

    this.bucket = new s3.Bucket(this, 'Payloads', {
      ...(props.kmsKey
        ? { encryption: s3.BucketEncryption.KMS, encryptionKey: props.kmsKey, bucketKeyEnabled: true }
        : { encryption: s3.BucketEncryption.S3_MANAGED }),
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        // Outputs are kept for the retention period; other payloads are deleted by the
        // orchestrator when their invocation finishes.
        // orchestrator when their invocation finishes. The longest retention of any service
        // (see `keepOutputsFor`) decides, so no service's output goes before its invocation.
        {
          id: 'expire-outputs',
          prefix: 'outputs/',
          expiration: Duration.days(Lazy.number({ produce: () => wholeDays(this.longestRetention) })),
        },
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });

    const groupName = `${stack.stackName}-timers`.slice(0, 64);
    this.scheduleGroup = new scheduler.CfnScheduleGroup(this, 'Timers', { name: groupName });

    // A fixed name lets the function's own policy name it without a dependency cycle.
    const functionName = `${stack.stackName}-orchestrator`.slice(0, 64);
    const functionArn = (this.functionArnByName = stack.formatArn({
      service: 'lambda',
      resource: 'function',
      resourceName: functionName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    }));

    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      description: 'EventBridge Scheduler wakes the durable orchestrator with this role',
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
    });
    // The unqualified function only (its control door): never the url or admin aliases.
    this.schedulerRole.addToPolicy(
      new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [functionArn] }),
    );

    this.function = rustFunction(
      this,
      'Function',
      { manifest: 'orchestrator/Cargo.toml', binary: 'orchestrator' },
      {
        functionName,
        description: 'durable-lambda orchestrator',
        // The orchestrator mostly waits on I/O (the handler's answer, DynamoDB): 128 MB is the
        // cheapest setting per invocation (see BENCHMARKS.md); more memory buys CPU, which
        // shortens its few ms of CPU work per request.
        memorySize: props.memorySize ?? 128,
        environmentEncryption: props.kmsKey,
        timeout: props.timeout ?? Duration.seconds(60),
        environment: {
          DURABLE_TABLE: this.table.tableName,
          DURABLE_BUCKET: this.bucket.bucketName,
          DURABLE_SCHEDULE_GROUP: groupName,
          DURABLE_SCHEDULER_ROLE_ARN: this.schedulerRole.roleArn,
          DURABLE_RETENTION_SECS: String(retention.toSeconds()),
          DURABLE_TIMER_LEAD_MS: String(props.timerLead?.toMilliseconds() ?? 0),
          DURABLE_MAX_VALUE_BYTES: String(props.maxValueBytes ?? 32 * 1024 * 1024),
        },
      },
    );

    this.kmsKey = props.kmsKey;
    props.kmsKey?.grantEncryptDecrypt(this.function);
    // Exactly what the orchestrator does, and nothing more.
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [
          'dynamodb:GetItem',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          // Objects: the lock hand-over removes inbox items, state clears remove state items.
          'dynamodb:DeleteItem',
          'dynamodb:Query',
          // The sweep reads the invocations it meets in the leases index in batches.
          'dynamodb:BatchGetItem',
          'dynamodb:BatchWriteItem',
          'dynamodb:TransactWriteItems',
          'dynamodb:ConditionCheckItem',
        ],
        resources: [this.table.tableArn],
      }),
    );
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['dynamodb:Query'],
        resources: [`${this.table.tableArn}/index/leases`, `${this.table.tableArn}/index/runs`],
      }),
    );
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'],
        resources: [this.bucket.arnForObjects('payloads/*'), this.bucket.arnForObjects('outputs/*')],
      }),
    );
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [this.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': ['payloads/*'] } },
      }),
    );
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        // Timers, delayed starts and deferred retries; unfired timers are deleted when their invocation finishes.
        actions: ['scheduler:CreateSchedule', 'scheduler:DeleteSchedule'],
        resources: [stack.formatArn({ service: 'scheduler', resource: 'schedule', resourceName: `${groupName}/*` })],
      }),
    );
    this.function.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['iam:PassRole'], resources: [this.schedulerRole.roleArn] }),
    );
    // Hand-offs, dispatches and resumptions are events to itself.
    this.function.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [functionArn] }),
    );

    // The doors (see docs/ARCHITECTURE.md, "Isolation"): the orchestrator tells them apart by
    // the qualifier it was invoked through, and IAM grants each one to its senders only.
    this.urlAlias = new lambda.Alias(this, 'UrlDoor', { aliasName: 'url', version: this.function.currentVersion });
    this.adminAlias = new lambda.Alias(this, 'AdminDoor', { aliasName: 'admin', version: this.function.currentVersion });
    this.url = this.urlAlias.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.AWS_IAM });

    // Every minute, re-drive invocations whose driver died (expired leases).
    const sweep = new scheduler.CfnSchedule(this, 'Sweep', {
      groupName,
      scheduleExpression: 'rate(1 minute)',
      flexibleTimeWindow: { mode: 'OFF' },
      target: { arn: functionArn, roleArn: this.schedulerRole.roleArn, input: JSON.stringify({ type: 'sweep' }) },
    });
    sweep.addDependency(this.scheduleGroup);
    sweep.node.addDependency(this.function);

    // cdk-nag (AwsSolutions): each finding that is a choice, and why.
    acknowledge(this.bucket, 'AwsSolutions-S1',
      'Payloads are transient (deleted when their invocation finishes; outputs expire with the retention) and only ' +
        'the engine\'s roles reach them; enable CloudTrail S3 data events for an audit trail instead of access logs.');
    acknowledge(this.function, BASIC_EXECUTION_ROLE,
      'The AWS managed basic execution role grants CloudWatch Logs writes only, which every Lambda needs.');
    const bucketArn = nagArnOf(this.bucket.node.defaultChild as s3.CfnBucket);
    for (const prefix of ['payloads', 'outputs']) {
      acknowledge(this.function, `AwsSolutions-IAM5[Resource::${bucketArn}/${prefix}/*]`,
        `The orchestrator reads, writes and deletes every invocation's ${prefix} (object names are content hashes under the invocation).`);
    }
    acknowledge(this.function, `AwsSolutions-IAM5[Resource::${nagArn(stack, 'scheduler', `schedule/${groupName}/*`)}]`,
      'Timer schedules are named per invocation and entry at run time, inside the engine\'s own schedule group.');
  }

  /** Lets `grantee` call the ingress (a signed request to the Function URL). */
  grantInvokeUrl(grantee: iam.IGrantable): iam.Grant {
    return this.urlAlias.grantInvokeUrl(grantee);
  }

  /** Keeps outputs in S3 at least `retention` (a service registered with a longer retention). */
  keepOutputsFor(retention: Duration): void {
    if (retention.toSeconds() > this.longestRetention.toSeconds()) {
      this.longestRetention = retention;
    }
  }

  /** Lets `grantee` (a deployer or operator role) send administrative events such as `register`. */
  grantAdmin(grantee: iam.IGrantable): iam.Grant {
    return this.adminAlias.grantInvoke(grantee);
  }
}

/** A retention in whole days, at least one (S3 lifecycle rules count days). */
function wholeDays(retention: Duration): number {
  return Math.max(1, Math.ceil(retention.toDays({ integral: false })));
}
