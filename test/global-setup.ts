// Runs once before the suite: the integration tests start their own redis-server, so make
// sure the binary exists (installing Debian's package when we are root and it is missing).
import { execSync } from 'node:child_process';

/** Whether a command is on PATH. */
export function has(cmd: string): boolean {
  try {
    execSync(`command -v ${cmd}`, { stdio: 'ignore', shell: '/bin/sh' });
    return true;
  } catch {
    return false;
  }
}

export default function setup(): void {
  if (has('redis-server')) return;
  if (process.getuid?.() === 0 && has('apt-get')) {
    console.log('redis-server missing: installing it with apt-get');
    execSync('apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server', { stdio: 'inherit', shell: '/bin/sh' });
    return;
  }
  throw new Error('redis-server is required by the tests: install it (e.g. `sudo apt-get install redis-server`)');
}
