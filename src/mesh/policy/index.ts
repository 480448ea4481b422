export * from './policy-document.js';
export * from './policy-schema.js';
