import { CfnOutput, Duration, Stack, StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { DurableOrchestrator } from './orchestrator';
import { DurableService } from './service';

/** The orchestrator and the example services of this repository. */
export class DurableExampleStack extends Stack {
  readonly orchestrator: DurableOrchestrator;
  readonly services: DurableService[];

  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    this.orchestrator = new DurableOrchestrator(this, 'Durable');
    // Approvals are kept a week (an audit trail people look back on); the others one day.
    const examples: [string, string, string[], Duration?][] = [
      ['Checkout', 'checkout', ['checkout']],
      ['Approvals', 'approvals', ['approvals'], Duration.days(7)],
      ['Trips', 'trips', ['trips', 'flights', 'hotels', 'payments']],
      ['Fanout', 'fanout', ['batch', 'words']],
    ];
    this.services = examples.map(
      ([id, name, services, retention]) =>
        new DurableService(this, id, {
          orchestrator: this.orchestrator,
          code: { manifest: `examples/${name}/Cargo.toml`, binary: name },
          services,
          retention,
        }),
    );
    new CfnOutput(this, 'IngressUrl', { value: this.orchestrator.url.url, description: 'POST /{service}/{handler} (SigV4, service lambda)' });
    new CfnOutput(this, 'JournalTable', { value: this.orchestrator.table.tableName });
    new CfnOutput(this, 'PayloadBucket', { value: this.orchestrator.bucket.bucketName });
    new CfnOutput(this, 'OrchestratorFunction', { value: this.orchestrator.function.functionName });
    new CfnOutput(this, 'ServiceAliases', { value: this.services.map((s) => s.alias.functionArn).join(',') });
  }
}
