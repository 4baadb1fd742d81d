export * from './orchestrator';
export * from './service';
export * from './example-stack';
export { RustCode, rustFunction } from './code';
