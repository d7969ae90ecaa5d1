// Waiting on a real gateway, for every package's tests (no dependencies: the client
// packages import it without the widget's node_modules).

/** Resolves once `check()` is truthy (polled), with its value; rejects after `ms`. */
export async function until(check, what, ms = 15_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A session's retained events, as the gateway has them (read with an admin key). */
export async function retainedEvents(gateway, sessionId, adminKey) {
  const response = await fetch(`${gateway.url}/v1/sessions/${sessionId}/events`, {
    headers: { authorization: `Bearer ${adminKey}` },
  });
  if (response.status !== 200) throw new Error(`history of ${sessionId}: ${response.status} ${await response.text()}`);
  return (await response.json()).events;
}
