/**
 * Larkspur Relay webhook delivery.
 *
 * When a render job finishes, Relay notifies the customer's endpoint with a signed POST request.
 * This module builds the payload, signs it, and delivers it with retries. It runs inside the
 * marrowbone worker fleet, one delivery per job, so a slow customer endpoint never delays
 * the render itself.
 *
 * Signatures: the header `Larkspur-Signature` carries `t=<unix seconds>,v1=<hex HMAC-SHA256>`,
 * computed over `${t}.${rawBody}` with the endpoint's signing secret. Receivers must reject
 * signatures whose timestamp is more than five minutes away from their clock, which stops an
 * attacker from replaying a captured delivery later.
 */

import { createHmac, timingSafeEqual } from "node:crypto";

/** Event types a customer can subscribe to. New types may be added without notice. */
export type RelayEventType =
  | "render_job.completed"
  | "render_job.failed"
  | "template.published"
  | "billing_account.overdue";

export interface RelayEvent {
  id: string; // evt_ followed by 16 characters, unique per event, stable across retries
  type: RelayEventType;
  created_at: string; // RFC 3339, UTC
  tenant_id: string;
  data: Record<string, unknown>;
}

/**
 * Delays before each retry, in seconds. After the last one the delivery is abandoned and the
 * endpoint gets a strike; an endpoint with 25 consecutive strikes is disabled automatically and
 * the tenant's admins receive an email telling them how to re-enable it.
 */
export const RETRY_SCHEDULE_S = [10, 60, 300, 1800, 7200, 21600] as const;

/** A delivery counts as successful only on a 2xx response received within this time. */
export const DELIVERY_TIMEOUT_MS = 8000;

/** Consecutive failed deliveries after which an endpoint is switched off. */
export const MAX_STRIKES = 25;

/** Payloads larger than this are truncated: `data` is replaced by a link to fetch the event. */
export const MAX_PAYLOAD_BYTES = 256 * 1024;

export function sign(secret: string, rawBody: string, timestamp: number): string {
  const mac = createHmac("sha256", secret).update(`${timestamp}.${rawBody}`).digest("hex");
  return `t=${timestamp},v1=${mac}`;
}

/** What receivers should do, offered in our SDKs; kept here so that both sides stay in step. */
export function verify(
  secret: string,
  rawBody: string,
  header: string,
  nowSeconds: number,
  toleranceSeconds = 300,
): boolean {
  const parts = Object.fromEntries(header.split(",").map((p) => p.split("=", 2)));
  const timestamp = Number(parts["t"]);
  if (!Number.isFinite(timestamp) || Math.abs(nowSeconds - timestamp) > toleranceSeconds) {
    return false;
  }
  const expected = Buffer.from(sign(secret, rawBody, timestamp).split("v1=")[1], "hex");
  const given = Buffer.from(parts["v1"] ?? "", "hex");
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export function buildBody(event: RelayEvent): string {
  const body = JSON.stringify(event);
  if (Buffer.byteLength(body) <= MAX_PAYLOAD_BYTES) {
    return body;
  }
  const { data: _dropped, ...rest } = event;
  return JSON.stringify({ ...rest, data: null, data_url: `/v2/events/${event.id}` });
}

export interface DeliveryResult {
  ok: boolean;
  status?: number;
  attempt: number;
}

/**
 * One delivery attempt. Redirects are not followed: a 3xx counts as a failure, because
 * following redirects to arbitrary hosts would let a customer aim our workers at internal
 * addresses.
 */
export async function deliverOnce(
  url: string,
  secret: string,
  event: RelayEvent,
  attempt: number,
): Promise<DeliveryResult> {
  const body = buildBody(event);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), DELIVERY_TIMEOUT_MS);
  try {
    const response = await fetch(url, {
      method: "POST",
      redirect: "manual",
      signal: controller.signal,
      headers: {
        "content-type": "application/json",
        "user-agent": "LarkspurRelay/2.4",
        "larkspur-signature": sign(secret, body, Math.floor(Date.now() / 1000)),
        "larkspur-event-id": event.id,
      },
      body,
    });
    return { ok: response.status >= 200 && response.status < 300, status: response.status, attempt };
  } catch {
    return { ok: false, attempt };
  } finally {
    clearTimeout(timer);
  }
}

/** The delay before retry number `attempt` (1-based), or undefined when retries are exhausted. */
export function nextDelaySeconds(attempt: number): number | undefined {
  return RETRY_SCHEDULE_S[attempt - 1];
}
