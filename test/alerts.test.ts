// The alert rules' unit tests (grafana/alerts.test.yml) run with promtool, and every alert of
// grafana/alerts.yml has a case where it fires and one where it must not.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensurePrometheus, ROOT } from './observability-helpers.js';

const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

describe('alert rules', () => {
  it('pass their promtool unit tests', () => {
    ensurePrometheus();
    const out = execFileSync('promtool', ['test', 'rules', 'grafana/alerts.test.yml'], { cwd: ROOT, encoding: 'utf8', stdio: 'pipe' });
    expect(out).toContain('SUCCESS');
  });

  it('each alert has a firing case and a quiet case', () => {
    const alerts = [...read('grafana/alerts.yml').matchAll(/- alert: (\w+)/g)].map((m) => m[1]!);
    expect(alerts.length).toBeGreaterThanOrEqual(12);
    // One alert_rule_test per case: its alertname and whether it expects alerts.
    const cases = read('grafana/alerts.test.yml')
      .split(/\n {2}- name: /)
      .slice(1)
      .map((c) => ({ alert: /alertname: (\w+)/.exec(c)?.[1], quiet: /exp_alerts: \[\]/.test(c), fires: /exp_alerts:\n\s+- exp_labels:/.test(c) }));
    for (const alert of alerts) {
      expect(cases.some((c) => c.alert === alert && c.fires), `${alert} fires`).toBe(true);
      expect(cases.some((c) => c.alert === alert && c.quiet), `${alert} stays quiet`).toBe(true);
    }
  });

  it('every alert links its runbook section with an absolute runbook_url', () => {
    const rules = read('grafana/alerts.yml');
    expect(rules).not.toMatch(/^\s+runbook:/m);
    for (const [, name] of rules.matchAll(/- alert: (\w+)/g)) {
      expect(rules, name).toMatch(new RegExp(`runbook_url: '.*https://\\S+docs/operations\\.md\\{\\{ end \\}\\}#${name!.toLowerCase()}'`));
    }
  });
});
