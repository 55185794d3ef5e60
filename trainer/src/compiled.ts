import { fileURLToPath } from 'node:url';

/**
 * The path of a compiled entry point next to the calling module. Worker threads bypass jest's
 * TypeScript transform, so a worker always runs from the build output (dist/), also when the
 * module that starts it was loaded from its .ts source.
 */
export function compiledPath(relative: string, from: string): string {
  const path = fileURLToPath(new URL(relative, from));
  if (/\/dist\//.test(path)) return path;
  return path.replace(/\/(trainer|operator|proto)\/src\//, '/dist/$1/src/');
}
