// Fair sampling of chat under a room's budget: round-robin across senders in random order,
// so a flooder cannot crowd out everyone else and every sender has the same chance.

/** Picks at most `budget` items, fairly across `senderOf` groups; returns [kept, dropped]. */
export function sampleFairly<T>(items: readonly T[], budget: number, senderOf: (item: T) => string, random = Math.random): [T[], T[]] {
  if (items.length <= budget) return [items.slice(), []];
  const bySender = new Map<string, T[]>();
  for (const it of items) {
    const s = senderOf(it);
    const list = bySender.get(s);
    if (list) list.push(it);
    else bySender.set(s, [it]);
  }
  const queues = [...bySender.values()];
  for (let i = queues.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [queues[i], queues[j]] = [queues[j]!, queues[i]!];
  }
  const kept = new Set<T>();
  for (let round = 0; kept.size < budget; round++) {
    let any = false;
    for (const q of queues) {
      const it = q[round];
      if (it === undefined) continue;
      any = true;
      kept.add(it);
      if (kept.size >= budget) break;
    }
    if (!any) break;
  }
  const keptList: T[] = [];
  const dropped: T[] = [];
  for (const it of items) (kept.has(it) ? keptList : dropped).push(it);
  return [keptList, dropped];
}
