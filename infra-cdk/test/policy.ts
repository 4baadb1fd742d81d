/**
 * An offline evaluation of a synthesized template's identity policies: LocalStack does not
 * enforce IAM, so the tests ask this evaluator whether a role may make a request. It resolves
 * the intrinsics our constructs use (Ref, Fn::GetAtt, Fn::Join) to concrete ARNs and supports
 * the conditions our policies use; any other condition fails loudly instead of guessing.
 */

export interface Request {
  readonly action: string;
  readonly resource: string;
  /** DynamoDB: the partition keys the request touches (`dynamodb:LeadingKeys`). */
  readonly leadingKeys?: string[];
  /** S3 ListBucket: the prefix asked for (`s3:prefix`). */
  readonly prefix?: string;
}

const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';

type Resources = Record<string, any>;

/** Resolves intrinsic values of `template` to strings. */
export class Resolver {
  constructor(private readonly resources: Resources) {}

  resolve(value: any): string {
    if (typeof value === 'string') return value;
    if (Array.isArray(value)) throw new Error(`a list where a string was expected: ${JSON.stringify(value)}`);
    if (value.Ref !== undefined) return this.ref(value.Ref);
    if (value['Fn::GetAtt'] !== undefined) {
      const [id, attr] = value['Fn::GetAtt'];
      if (attr !== 'Arn') throw new Error(`unsupported attribute ${id}.${attr}`);
      return this.arn(id);
    }
    if (value['Fn::Join'] !== undefined) {
      const [sep, parts] = value['Fn::Join'];
      return parts.map((p: any) => this.resolve(p)).join(sep);
    }
    throw new Error(`unsupported intrinsic ${JSON.stringify(value)}`);
  }

  private ref(id: string): string {
    switch (id) {
      case 'AWS::Partition':
        return 'aws';
      case 'AWS::Region':
        return REGION;
      case 'AWS::AccountId':
        return ACCOUNT;
      case 'AWS::URLSuffix':
        return 'amazonaws.com';
    }
    const r = this.resources[id];
    if (!r) throw new Error(`no resource ${id}`);
    switch (r.Type) {
      case 'AWS::Lambda::Function':
        return this.functionName(id);
      case 'AWS::Lambda::Alias':
      case 'AWS::Lambda::Version':
        return this.arn(id);
      default:
        return id;
    }
  }

  private functionName(id: string): string {
    const name = this.resources[id].Properties.FunctionName;
    return name === undefined ? id : this.resolve(name);
  }

  /** The ARN of resource `id`. */
  arn(id: string): string {
    const r = this.resources[id];
    if (!r) throw new Error(`no resource ${id}`);
    switch (r.Type) {
      case 'AWS::DynamoDB::Table':
        return `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${id}`;
      case 'AWS::S3::Bucket':
        return `arn:aws:s3:::${id}`;
      case 'AWS::KMS::Key':
        return `arn:aws:kms:${REGION}:${ACCOUNT}:key/${id}`;
      case 'AWS::IAM::Role':
        return `arn:aws:iam::${ACCOUNT}:role/${id}`;
      case 'AWS::Lambda::Function':
        return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${this.functionName(id)}`;
      case 'AWS::Lambda::Alias': {
        const fn = this.resolve(r.Properties.FunctionName);
        const base = fn.startsWith('arn:') ? fn : `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${fn}`;
        return `${base}:${r.Properties.Name}`;
      }
      default:
        throw new Error(`no ARN for ${r.Type} ${id}`);
    }
  }
}

/** IAM's wildcard match: `*` any run of characters, `?` one character. */
function like(pattern: string, value: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return re.test(value);
}

/** The identity-policy statements attached to role `roleId`, resolved. */
export function statementsOf(resources: Resources, roleId: string): any[] {
  const resolver = new Resolver(resources);
  return Object.values(resources)
    .filter((r: any) => r.Type === 'AWS::IAM::Policy')
    .filter((p: any) => p.Properties.Roles.some((role: any) => role.Ref === roleId))
    .flatMap((p: any) => p.Properties.PolicyDocument.Statement)
    .map((s: any) => ({
      ...s,
      Action: [s.Action].flat(),
      Resource: [s.Resource].flat().map((r: any) => resolver.resolve(r)),
    }));
}

function conditionHolds(condition: Record<string, Record<string, any>> | undefined, request: Request): boolean {
  if (!condition) return true;
  return Object.entries(condition).every(([operator, keys]) =>
    Object.entries(keys).every(([key, patterns]) => {
      const allowed = [patterns].flat() as string[];
      if (operator === 'ForAllValues:StringLike' && key === 'dynamodb:LeadingKeys') {
        // No leading keys (a Scan) satisfies ForAllValues vacuously, as in IAM.
        return (request.leadingKeys ?? []).every((k) => allowed.some((p) => like(p, k)));
      }
      if (operator === 'StringLike' && key === 's3:prefix') {
        return request.prefix !== undefined && allowed.some((p) => like(p, request.prefix!));
      }
      if (operator === 'StringEquals' && key === 'aws:SourceAccount') return true;
      throw new Error(`the evaluator does not know condition ${operator} ${key}`);
    }),
  );
}

/** Whether the statements allow `request` (no statement denies: our policies have none). */
export function allows(statements: any[], request: Request): boolean {
  if (statements.some((s) => s.Effect === 'Deny')) throw new Error('Deny statements are not evaluated');
  return statements.some(
    (s) =>
      s.Effect === 'Allow' &&
      s.Action.some((a: string) => like(a, request.action)) &&
      s.Resource.some((r: string) => like(r, request.resource)) &&
      conditionHolds(s.Condition, request),
  );
}
