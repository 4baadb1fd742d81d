#!/usr/bin/env python3
"""The per-request cost of the two local DynamoDB paths: through LocalStack's gateway (port 4566)
and straight to DynamoDB Local (port 4567), interleaved, 5 rounds of 100 PutItem + GetItem each,
with LocalStack's own CPU time per request. Needs `scripts/local-aws.sh up` and a deployed table;
run with LocalStack's venv:

    .local-aws/venv/bin/python scripts/emulator-paths.py [--table durable-local-journal] [--markdown]

`--markdown` prints the BENCHMARKS.md section (scripts/bench.sh puts it there).
"""
import argparse
import datetime
import statistics
import time

import boto3
import psutil


def client(url):
    return boto3.client('dynamodb', endpoint_url=url, region_name='us-east-1',
                        aws_access_key_id='test', aws_secret_access_key='test')


def measure(table):
    paths = {'gateway': client('http://127.0.0.1:4566'), 'direct': client('http://127.0.0.1:4567')}
    res = {k: {'put': [], 'get': []} for k in paths}
    cpu = {k: 0.0 for k in paths}
    ls = [p for p in psutil.process_iter(['cmdline'])
          if p.info['cmdline'] and 'localstack.runtime.main' in ' '.join(p.info['cmdline'])][0]
    for rnd in range(5):
        for name, c in paths.items():   # interleaved
            c0 = sum(ls.cpu_times()[:2])
            for i in range(100):
                k = {'pk': {'S': f'emu#{name}'}, 'sk': {'S': f'{rnd}-{i}'}}
                a = time.perf_counter()
                c.put_item(TableName=table, Item={**k, 'v': {'S': 'x' * 200}})
                res[name]['put'].append(time.perf_counter() - a)
                a = time.perf_counter()
                c.get_item(TableName=table, Key=k, ConsistentRead=True)
                res[name]['get'].append(time.perf_counter() - a)
            # Two requests per item.
            cpu[name] += (sum(ls.cpu_times()[:2]) - c0) / 200 * 1000
    return res, {k: v / 5 for k, v in cpu.items()}


def pct(v, p):
    v = sorted(v)
    return (statistics.median(v) if p == 50 else v[int(len(v) * p / 100) - 1]) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--table', default='durable-local-journal')
    ap.add_argument('--markdown', action='store_true')
    args = ap.parse_args()
    res, cpu = measure(args.table)
    if not args.markdown:
        for name in res:
            for op in ('put', 'get'):
                print(f"{name:8} {op}: p50 {pct(res[name][op], 50):.2f} ms, p99 {pct(res[name][op], 99):.2f} ms")
            print(f"{name:8} LocalStack CPU per request: {cpu[name]:.2f} ms")
        return
    label = {'gateway': 'LocalStack gateway (127.0.0.1:4566)', 'direct': 'DynamoDB Local directly (127.0.0.1:4567)'}
    print("## Local emulator paths (DynamoDB)\n")
    print(f"`scripts/emulator-paths.py` (in the same run), {datetime.date.today()}, this machine: 5 interleaved")
    print("rounds of 100 PutItem + strongly consistent GetItem of a 200-byte item, from one boto3 client,")
    print("through each path.\n")
    print("| path | PutItem p50 / p99 | GetItem p50 / p99 | LocalStack CPU per request |")
    print("|---|---|---|---|")
    for name in res:
        print(f"| {label[name]} | {pct(res[name]['put'], 50):.2f} / {pct(res[name]['put'], 99):.2f} ms "
              f"| {pct(res[name]['get'], 50):.2f} / {pct(res[name]['get'], 99):.2f} ms | {cpu[name]:.2f} ms |")
    print("""
The local Lambdas send DynamoDB requests straight to DynamoDB Local. The benchmark's Lambdas go
through its counting proxy, which forwards to the gateway, so the latencies above include the
gateway's time per DynamoDB request, which neither the direct local path nor AWS has.
LocalStack's gateway is a single Python interpreter (at most one core), so its CPU per request
also caps a local run's request rate.
""")


if __name__ == '__main__':
    main()
