export * from './runtime/mod.js';
