#!/usr/bin/env python3
"""The per-request cost of the two local DynamoDB paths: through LocalStack's gateway (port 4566)
and straight to DynamoDB Local (port 4567), interleaved, 5 rounds of 100 PutItem + GetItem each,
with LocalStack's own CPU time per request. Needs `scripts/local-aws.sh up` and a deployed
`durable-local-journal` table; run with LocalStack's venv:

    .local-aws/venv/bin/python scripts/emulator-paths.py
"""
import statistics
import time

import boto3
import psutil


def client(url):
    return boto3.client('dynamodb', endpoint_url=url, region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')
paths = {'gateway': client('http://127.0.0.1:4566'), 'direct': client('http://127.0.0.1:4567')}
t = 'durable-local-journal'
res = {k: {'put': [], 'get': []} for k in paths}
cpu = {k: 0.0 for k in paths}

ls = [p for p in psutil.process_iter(['cmdline']) if p.info['cmdline'] and 'localstack.runtime.main' in ' '.join(p.info['cmdline'])][0]
for rnd in range(5):
    for name, c in paths.items():   # interleaved
        c0 = sum(ls.cpu_times()[:2])
        for i in range(100):
            k = {'pk': {'S': f'emu#{name}'}, 'sk': {'S': f'{rnd}-{i}'}}
            a = time.perf_counter(); c.put_item(TableName=t, Item={**k, 'v': {'S': 'x' * 200}}); res[name]['put'].append(time.perf_counter() - a)
            a = time.perf_counter(); c.get_item(TableName=t, Key=k, ConsistentRead=True); res[name]['get'].append(time.perf_counter() - a)
        cpu[name] += sum(ls.cpu_times()[:2]) - c0
for name in paths:
    for op in ('put', 'get'):
        v = sorted(res[name][op]); print(f"{name:8} {op}: p50 {statistics.median(v)*1000:.2f} ms, p99 {v[int(len(v)*0.99)-1]*1000:.2f} ms (n={len(v)})")
    print(f"{name:8} LocalStack CPU per request: {cpu[name] / 1000 * 1000:.2f} ms")
