import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';

let template: Template;

before(() => {
  // Prebuilt assets (a placeholder bootstrap per binary): no cargo-lambda, no network.
  const assets = fs.mkdtempSync(path.join(os.tmpdir(), 'durable-assets-'));
  for (const binary of ['orchestrator', 'checkout', 'approvals', 'trips', 'fanout']) {
    fs.mkdirSync(path.join(assets, binary));
    fs.writeFileSync(path.join(assets, binary, 'bootstrap'), '#!/bin/sh\n', { mode: 0o755 });
  }
  process.env.DURABLE_ASSETS_DIR = assets;
  // Loaded after the switch is set.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { DurableExampleStack } = require('../lib/example-stack');
  const app = new App();
  const stack = new DurableExampleStack(app, 'Test', { env: { account: '123456789012', region: 'eu-west-1' } });
  template = Template.fromStack(stack);
});

test('the journal table is on-demand, keyed pk/sk, with TTL and point-in-time recovery', () => {
  template.hasResourceProperties('AWS::DynamoDB::Table', {
    KeySchema: [
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ],
    BillingMode: 'PAY_PER_REQUEST',
    TimeToLiveSpecification: { AttributeName: 'expires_at', Enabled: true },
    PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
  });
});

test('a sparse keys-only index of running invocations by lease feeds a sweep every minute', () => {
  template.hasResourceProperties('AWS::DynamoDB::Table', {
    GlobalSecondaryIndexes: [
      Match.objectLike({
        IndexName: 'leases',
        KeySchema: [
          { AttributeName: 'lease_shard', KeyType: 'HASH' },
          { AttributeName: 'lease_until', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'KEYS_ONLY' },
      }),
      Match.objectLike({
        IndexName: 'runs',
        KeySchema: [
          { AttributeName: 'list_pk', KeyType: 'HASH' },
          { AttributeName: 'list_sk', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'KEYS_ONLY' },
      }),
    ],
  });
  template.hasResourceProperties('AWS::Scheduler::Schedule', {
    ScheduleExpression: 'rate(1 minute)',
    Target: Match.objectLike({ Input: '{"type":"sweep"}' }),
  });
});

test('the payload bucket is encrypted, private, TLS-only, and expires outputs after the longest retention', () => {
  template.hasResourceProperties('AWS::S3::Bucket', {
    BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
    PublicAccessBlockConfiguration: {
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    },
    LifecycleConfiguration: {
      // Approvals keep their invocations 7 days: their outputs must stay that long.
      Rules: Match.arrayWith([Match.objectLike({ Prefix: 'outputs/', ExpirationInDays: 7, Status: 'Enabled' })]),
    },
  });
  template.hasResourceProperties('AWS::S3::BucketPolicy', {
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      ]),
    },
  });
});

test('the ingress is a Function URL with IAM auth', () => {
  template.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'AWS_IAM' });
  template.resourceCountIs('AWS::Lambda::Url', 1);
});

test('functions are arm64 on provided.al2023, handlers behind a live alias', () => {
  const functions = template.findResources('AWS::Lambda::Function', {
    Properties: { Runtime: 'provided.al2023' },
  });
  assert.equal(Object.keys(functions).length, 5, 'the orchestrator and four example services');
  for (const f of Object.values(functions)) {
    assert.deepEqual((f as any).Properties.Architectures, ['arm64']);
  }
  // Four handlers' `live`, and the orchestrator's two doors.
  template.resourceCountIs('AWS::Lambda::Alias', 6);
  template.hasResourceProperties('AWS::Lambda::Alias', { Name: 'live' });
  template.hasResourceProperties('AWS::Lambda::Alias', { Name: 'url' });
  template.hasResourceProperties('AWS::Lambda::Alias', { Name: 'admin' });
});

test('timers get their own schedule group and a scheduler role that can only wake the orchestrator', () => {
  template.resourceCountIs('AWS::Scheduler::ScheduleGroup', 1);
  template.hasResourceProperties('AWS::IAM::Role', {
    AssumeRolePolicyDocument: {
      Statement: [
        Match.objectLike({
          Principal: { Service: 'scheduler.amazonaws.com' },
          Condition: { StringEquals: { 'aws:SourceAccount': '123456789012' } },
        }),
      ],
    },
  });
  const roles = template.findResources('AWS::IAM::Role');
  const schedulerRole = Object.entries(roles).find(([, r]) =>
    JSON.stringify((r as any).Properties.AssumeRolePolicyDocument).includes('scheduler.amazonaws.com'),
  );
  assert.ok(schedulerRole, 'a role for EventBridge Scheduler');
  const policies = Object.values(template.findResources('AWS::IAM::Policy')).filter((p: any) =>
    JSON.stringify(p.Properties.Roles).includes(schedulerRole![0]),
  );
  const statements = policies.flatMap((p: any) => p.Properties.PolicyDocument.Statement);
  assert.deepEqual([...new Set(statements.map((s: any) => s.Action))], ['lambda:InvokeFunction']);
  assert.ok(statements.every((s: any) => JSON.stringify(s.Resource).includes(':function:Test-orchestrator')));
});

test('no IAM policy grants a wildcard action or a wildcard resource', () => {
  const policies = template.findResources('AWS::IAM::Policy');
  assert.ok(Object.keys(policies).length > 0);
  for (const [name, policy] of Object.entries(policies)) {
    for (const statement of (policy as any).Properties.PolicyDocument.Statement) {
      const actions = [statement.Action].flat();
      for (const action of actions) {
        assert.ok(!String(action).includes('*'), `${name} grants ${action}`);
      }
      const resources = [statement.Resource].flat();
      for (const resource of resources) {
        assert.notEqual(resource, '*', `${name} grants ${actions} on every resource`);
      }
    }
  }
});

test('the orchestrator may invoke only itself and the registered handler functions', () => {
  const policies = template.findResources('AWS::IAM::Policy');
  const orchestratorPolicy = Object.values(policies).find((p: any) =>
    JSON.stringify(p.Properties.Roles).includes('DurableFunctionServiceRole'),
  ) as any;
  assert.ok(orchestratorPolicy, 'the orchestrator has a policy');
  const invokes = orchestratorPolicy.Properties.PolicyDocument.Statement.filter((s: any) => s.Action === 'lambda:InvokeFunction');
  const targets = JSON.stringify(invokes.map((s: any) => s.Resource));
  for (const service of ['Checkout', 'Approvals', 'Trips', 'Fanout']) {
    assert.ok(targets.includes(`:function:Test-${service}`), `may invoke ${service}`);
  }
  assert.ok(targets.includes('Test-orchestrator'), 'may send itself events');
  assert.equal(invokes.length, 5, 'itself and four services, nothing else');
});

test('handlers may touch only their own services\' invocation, dated metadata and object items (LeadingKeys)', () => {
  template.hasResourceProperties('AWS::IAM::Policy', {
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({
          Action: [
            'dynamodb:PutItem',
            'dynamodb:GetItem',
            'dynamodb:UpdateItem',
            'dynamodb:Query',
            'dynamodb:ConditionCheckItem',
          ],
          Condition: {
            'ForAllValues:StringLike': {
              'dynamodb:LeadingKeys': ['inv#trips#*', 'inv#flights#*', 'inv#hotels#*', 'inv#payments#*'],
            },
          },
        }),
        // Dated invocations' metadata items: handlers set their payload flag and read whether
        // they were cancelled, nothing else.
        Match.objectLike({
          Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
          Condition: {
            'ForAllValues:StringLike': {
              'dynamodb:LeadingKeys': ['run#trips#*', 'run#flights#*', 'run#hotels#*', 'run#payments#*'],
            },
          },
        }),
        // Object state is never put or deleted by handlers (a workflow's run updates it).
        Match.objectLike({
          Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:Query'],
          Condition: {
            'ForAllValues:StringLike': {
              'dynamodb:LeadingKeys': ['obj#trips#*', 'obj#flights#*', 'obj#hotels#*', 'obj#payments#*'],
            },
          },
        }),
      ]),
    },
  });
});

test('each handler is registered with the orchestrator at deploy time', () => {
  const registrations = template.findResources('Custom::AWS');
  assert.equal(Object.keys(registrations).length, 4);
  for (const r of Object.values(registrations)) {
    const create = JSON.stringify((r as any).Properties.Update ?? (r as any).Properties.Create);
    assert.match(create, /type.{0,12}register/, 'a register event');
    assert.match(create, /function_arn.{0,20}Ref.{0,6}[A-Za-z]+Live/, 'naming the live alias');
    assert.match(create, /services.{0,12}\[/, 'with the services it may serve');
    assert.match(create, /FunctionName.{0,30}AdminDoor/, 'through the admin door');
  }
  // A service's retention travels with its registration; the others keep the default.
  const withRetention = Object.values(registrations)
    .map((r) => JSON.stringify((r as any).Properties.Update ?? (r as any).Properties.Create))
    .filter((c) => /retention_secs/.test(c));
  assert.equal(withRetention.length, 1);
  assert.match(withRetention[0], /retention_secs.{0,6}604800/);
});
