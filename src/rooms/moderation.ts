// Bans (after kicks) and mutes, per room, with expiry. Shared by the moderator ops and the
// API; the bus's control channel applies the same commands on every worker. Each table holds
// at most `maxEntries`: past it the oldest entry goes, so no stream of kicks grows memory.
export class Moderation {
  private readonly bans = new Map<string, number>(); // room\0uid -> until ms
  private readonly mutes = new Map<string, number>(); // room\0uid -> until ms
  private readonly roomMutes = new Map<string, number>(); // room -> until ms
  private readonly userBans = new Map<string, number>(); // uid -> until ms (disconnect with seconds)

  constructor(
    private readonly now: () => number,
    private readonly maxEntries: number,
  ) {}

  ban(room: string, uid: string, untilMs: number): void {
    this.put(this.bans, room + '\0' + uid, untilMs);
  }

  /** ms left of a ban, or 0. */
  bannedFor(room: string, uid: string): number {
    return this.left(this.bans, room + '\0' + uid);
  }

  /** Refuses the user's upgrades until `untilMs` (a disconnect with `seconds`). */
  banUser(uid: string, untilMs: number): void {
    if (untilMs > this.now()) this.userBans.set(uid, untilMs);
  }

  /** ms left of the user's ban from connecting, or 0. */
  userBannedFor(uid: string): number {
    return this.left(this.userBans, uid);
  }

  mute(room: string, uid: string | undefined, untilMs: number): void {
    const map = uid === undefined ? this.roomMutes : this.mutes;
    const key = uid === undefined ? room : room + '\0' + uid;
    if (untilMs <= this.now()) map.delete(key);
    else this.put(map, key, untilMs);
  }

  /** ms left of the user's mute in the room (user or whole-room), or 0. */
  mutedFor(room: string, uid: string, exemptFromRoomMute: boolean): number {
    const own = this.left(this.mutes, room + '\0' + uid);
    const all = exemptFromRoomMute ? 0 : this.left(this.roomMutes, room);
    return Math.max(own, all);
  }

  roomMutedUntil(room: string): number {
    return this.left(this.roomMutes, room) > 0 ? (this.roomMutes.get(room) ?? 0) : 0;
  }

  /** Forgets expired bans and mutes (they are otherwise dropped only when read). */
  sweep(): void {
    const t = this.now();
    for (const map of [this.bans, this.mutes, this.roomMutes, this.userBans]) for (const [k, until] of map) if (until <= t) map.delete(k);
  }

  /** Entries per table, for the roomcast_moderation_entries gauge. */
  sizes(): { bans: number; mutes: number; room_mutes: number } {
    return { bans: this.bans.size, mutes: this.mutes.size, room_mutes: this.roomMutes.size };
  }

  /** Sets `key` as the newest entry; over the bound the oldest entry goes. */
  private put(map: Map<string, number>, key: string, untilMs: number): void {
    map.delete(key);
    map.set(key, untilMs);
    if (map.size > this.maxEntries) map.delete(map.keys().next().value!);
  }

  private left(map: Map<string, number>, key: string): number {
    const until = map.get(key);
    if (until === undefined) return 0;
    const ms = until - this.now();
    if (ms <= 0) {
      map.delete(key);
      return 0;
    }
    return ms;
  }
}
