// The package's root folder, found from this module whether it runs from src/ (tests) or dist/src/.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function find(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('roomcast package root not found');
    dir = up;
  }
  return dir;
}

export const packageRoot = find();
