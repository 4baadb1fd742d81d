#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { DurableExampleStack } from '../lib/example-stack';

const app = new App();
new DurableExampleStack(app, process.env.DURABLE_STACK_NAME ?? 'DurableLambdaExamples', {
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
