import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { allows, Request, Resolver, statementsOf } from './policy';

// Two services in one orchestrator: what one handler may do to the other's items.
let resources: Record<string, any>;
let resolver: Resolver;
let table: string;
let bucket: string;
let orchestrator: string;

function logicalId(type: string, includes: string): string {
  const found = Object.entries(resources).filter(([id, r]) => r.Type === type && id.includes(includes));
  assert.equal(found.length, 1, `one ${type} named like ${includes}: ${found.map(([id]) => id)}`);
  return found[0][0];
}

function role(includes: string): any[] {
  return statementsOf(resources, logicalId('AWS::IAM::Role', includes));
}

before(() => {
  const assets = fs.mkdtempSync(path.join(os.tmpdir(), 'durable-assets-'));
  for (const binary of ['orchestrator', 'payments', 'newsletter', 'checkout', 'approvals', 'trips', 'fanout']) {
    fs.mkdirSync(path.join(assets, binary));
    fs.writeFileSync(path.join(assets, binary, 'bootstrap'), '#!/bin/sh\n', { mode: 0o755 });
  }
  process.env.DURABLE_ASSETS_DIR = assets;
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { DurableOrchestrator, DurableService } = require('../lib');
  const app = new App();
  const stack = new Stack(app, 'Iso', { env: { account: '123456789012', region: 'eu-west-1' } });
  const durable = new DurableOrchestrator(stack, 'Durable');
  new DurableService(stack, 'Payments', {
    orchestrator: durable,
    code: { manifest: 'x/Cargo.toml', binary: 'payments' },
    services: ['payments'],
  });
  new DurableService(stack, 'Newsletter', {
    orchestrator: durable,
    code: { manifest: 'x/Cargo.toml', binary: 'newsletter' },
    services: ['newsletter', 'digest'],
  });
  resources = Template.fromStack(stack).toJSON().Resources;
  resolver = new Resolver(resources);
  table = resolver.arn(logicalId('AWS::DynamoDB::Table', 'Journal'));
  bucket = resolver.arn(logicalId('AWS::S3::Bucket', 'Payloads'));
  orchestrator = resolver.arn(logicalId('AWS::Lambda::Function', 'DurableFunction'));
});

const item = (action: string, ...leadingKeys: string[]): Request => ({ action: `dynamodb:${action}`, resource: table, leadingKeys });
const object = (action: string, key: string): Request => ({ action: `s3:${action}`, resource: `${bucket}/${key}` });
const invoke = (arn: string): Request => ({ action: 'lambda:InvokeFunction', resource: arn });

test('a handler reaches its own service\'s items and objects', () => {
  const payments = role('PaymentsFunctionServiceRole');
  for (const request of [
    item('PutItem', 'inv#payments#0123456789abcdef0123456789abcdef'),
    item('Query', 'inv#payments#0123456789abcdef0123456789abcdef'),
    item('UpdateItem', 'run#payments#01c8e2a0#3'),
    item('GetItem', 'obj#payments#ada'),
    item('UpdateItem', 'obj#payments#ada'),
    object('GetObject', 'payloads/payments/t01/input/abc'),
    object('PutObject', 'outputs/payments/t01/output/abc'),
    invoke(orchestrator),
  ]) {
    assert.ok(allows(payments, request), `payments may ${JSON.stringify(request)}`);
  }
  // A Lambda that serves two services gets both.
  const newsletter = role('NewsletterFunctionServiceRole');
  assert.ok(allows(newsletter, item('PutItem', 'inv#digest#x')));
  assert.ok(allows(newsletter, object('PutObject', 'payloads/digest/x/y/z')));
});

test('a handler is denied another service\'s items, objects, the registry, the signing key and the admin and URL doors', () => {
  const payments = role('PaymentsFunctionServiceRole');
  for (const request of [
    item('PutItem', 'inv#newsletter#0123456789abcdef0123456789abcdef'),
    item('UpdateItem', 'inv#newsletter#0123456789abcdef0123456789abcdef'),
    item('Query', 'inv#digest#x'),
    item('UpdateItem', 'run#newsletter#01c8e2a0#3'),
    item('UpdateItem', 'obj#newsletter#ada'),
    // A prefix of another name is another service.
    item('PutItem', 'inv#paymentsx#x'),
    item('PutItem', 'inv#payments#x', 'inv#newsletter#y'),
    item('GetItem', 'svc'),
    item('PutItem', 'svc'),
    item('GetItem', 'sys'),
    item('UpdateItem', 'sweep'),
    item('DeleteItem', 'inv#payments#x'),
    item('BatchWriteItem', 'inv#payments#x'),
    object('GetObject', 'payloads/newsletter/t01/input/abc'),
    object('GetObject', 'outputs/newsletter/t01/output'),
    object('DeleteObject', 'payloads/payments/t01/input/abc'),
    invoke(`${orchestrator}:admin`),
    invoke(`${orchestrator}:url`),
    invoke(resolver.arn(logicalId('AWS::Lambda::Function', 'NewsletterFunction'))),
    { action: 'lambda:InvokeFunctionUrl', resource: `${orchestrator}:url` },
  ]) {
    assert.ok(!allows(payments, request), `payments must not ${JSON.stringify(request)}`);
  }
});

test('only the registration custom resource may use the admin door; the scheduler only the control door', () => {
  const admin = invoke(`${orchestrator}:admin`);
  const roles = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::IAM::Role');
  const admitted = roles.filter(([id]) => allows(statementsOf(resources, id), admin)).map(([id]) => id);
  assert.equal(admitted.length, 1, `${admitted}`);
  assert.match(admitted[0], /^AWS[0-9a-f]{32}ServiceRole/, 'the AwsCustomResource singleton role');
  const scheduler = role('SchedulerRole');
  assert.ok(allows(scheduler, invoke(orchestrator)));
  assert.ok(!allows(scheduler, admin));
  assert.ok(!allows(scheduler, invoke(`${orchestrator}:url`)));
});

test('the Function URL is on the url door, and registration names the services each Lambda may serve', () => {
  const urls = Object.values(resources).filter((r: any) => r.Type === 'AWS::Lambda::Url') as any[];
  assert.equal(urls.length, 1);
  assert.match(resolver.resolve(urls[0].Properties.TargetFunctionArn), /:function:Iso-orchestrator$/);
  assert.equal(urls[0].Properties.Qualifier, 'url');
  const registrations = Object.values(resources).filter((r: any) => r.Type === 'Custom::AWS') as any[];
  const bodies = registrations.map((r) => JSON.stringify(r.Properties.Update));
  assert.ok(bodies.some((b) => /services.{0,12}\[.{0,8}newsletter.{0,12}digest/.test(b)), bodies.join('\n'));
  assert.ok(bodies.some((b) => /services.{0,12}\[.{0,8}payments.{0,8}\]/.test(b)), bodies.join('\n'));
});

test('a kmsKey encrypts the table, the bucket (with a bucket key) and the orchestrator\'s environment', () => {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { DurableOrchestrator, DurableService } = require('../lib');
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const kms = require('aws-cdk-lib/aws-kms');
  const app = new App();
  const stack = new Stack(app, 'Kms', { env: { account: '123456789012', region: 'eu-west-1' } });
  const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
  const durable = new DurableOrchestrator(stack, 'Durable', { kmsKey: key });
  new DurableService(stack, 'Payments', { orchestrator: durable, code: { manifest: 'x/Cargo.toml', binary: 'payments' }, services: ['payments'] });
  const t = Template.fromStack(stack);
  const keyRef = { 'Fn::GetAtt': [Object.keys(t.findResources('AWS::KMS::Key'))[0], 'Arn'] };
  t.hasResourceProperties('AWS::DynamoDB::Table', { SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: keyRef } });
  t.hasResourceProperties('AWS::S3::Bucket', {
    BucketEncryption: { ServerSideEncryptionConfiguration: [{ BucketKeyEnabled: true, ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: keyRef } }] },
  });
  t.hasResourceProperties('AWS::Lambda::Function', { FunctionName: 'Kms-orchestrator', KmsKeyArn: keyRef });
  const resources = t.toJSON().Resources;
  const decrypt = { action: 'kms:Decrypt', resource: new Resolver(resources).arn(Object.keys(t.findResources('AWS::KMS::Key'))[0]) };
  const roles = Object.keys(resources).filter((id) => resources[id].Type === 'AWS::IAM::Role');
  for (const name of ['DurableFunctionServiceRole', 'PaymentsFunctionServiceRole']) {
    const role = roles.find((id) => id.includes(name))!;
    assert.ok(allows(statementsOf(resources, role), decrypt), `${name} may use the key`);
  }
});

test('cdk-nag (AwsSolutions) finds nothing unsuppressed in the example stack', () => {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { DurableExampleStack } = require('../lib/example-stack');
  const app = new App();
  const stack = new DurableExampleStack(app, 'Nagged', { env: { account: '123456789012', region: 'eu-west-1' } });
  const report = new AwsSolutionsChecks(app).validateScope(stack);
  const show = report.violations
    .map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.resourceLogicalId + ' ' + (r as any).locations?.join(',')).join('; ')}`)
    .join('\n');
  assert.equal(report.violations.length, 0, show);
});
