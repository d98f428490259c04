// The tar parser and writer under their former module name, for the modules that still import
// it (reader.ts, builder.ts): the code is in tar-parser.ts and tar-writer.ts. Remove this file
// once nothing imports it.
export * from './tar-parser.js';
export * from './tar-writer.js';
