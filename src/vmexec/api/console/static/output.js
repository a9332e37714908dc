// Output panes (one per VM, a region labelled with the VM's name), fed by the API's
// Server-Sent Events: an execution's /output, or a run's /events.
import { API, query } from "./api.js";

const EXECUTIONS = `${API}/vm-instances/commands/executions`;
const RUNS = `${API}/vm-instances/commands/runs`;

export class Pane {
  constructor(container, name) {
    this.root = document.createElement("section");
    this.root.className = "pane";
    this.root.setAttribute("role", "region");
    this.root.setAttribute("aria-label", name);
    const head = document.createElement("header");
    const title = document.createElement("h3");
    title.textContent = name;
    this.status = document.createElement("span");
    this.status.className = "pane-status";
    this.status.textContent = "waiting";
    head.append(title, this.status);
    this.output = document.createElement("pre");
    this.output.className = "output";
    this.output.setAttribute("aria-live", "polite");
    this.root.append(head, this.output);
    container.append(this.root);
  }

  write(stream, text) {
    const last = this.output.lastElementChild;
    if (last && last.dataset.stream === stream) {
      last.textContent += text;  // one node per run of a stream, not per chunk
    } else {
      const span = document.createElement("span");
      span.className = stream;
      span.dataset.stream = stream;
      span.textContent = text;
      this.output.append(span);
    }
    this.output.scrollTop = this.output.scrollHeight;
  }

  running() {
    this.setStatus("running", "running");
  }

  clear() {
    this.output.replaceChildren();
    this.setStatus("waiting", "waiting");
  }

  setStatus(text, kind) {
    this.status.textContent = text;
    this.status.dataset.state = kind;
  }

  /** The end, from the execution's inventory. */
  finish(execution) {
    const parts = [execution.state];
    if (execution.exitCode !== undefined && execution.exitCode !== null) {
      parts.push(`exit code ${execution.exitCode}`);
    }
    if (execution.signal) parts.push(`signal ${execution.signal}`);
    if (execution.errorCode) parts.push(`error ${execution.errorCode}`);
    if (execution.durationMs !== undefined && execution.durationMs !== null) {
      parts.push(duration(execution.durationMs));
    }
    this.setStatus(parts.join(" · "), execution.state);
    if (execution.errorDetails && !this.output.textContent) {
      this.write("error", execution.errorDetails);
    }
  }
}

export function duration(ms) {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

async function execution(uuid) {
  const reply = await query(EXECUTIONS, { q: [`uuid=${uuid}`] });
  return reply.inventories[0];
}

/** Follow one execution into its pane; resolves with its inventory once it ended. */
export function followExecution(uuid, pane) {
  return new Promise((resolve) => {
    const source = new EventSource(`${EXECUTIONS}/${uuid}/output`);
    pane.running();
    for (const stream of ["stdout", "stderr"]) {
      source.addEventListener(stream, (event) => pane.write(stream, JSON.parse(event.data).text));
    }
    source.addEventListener("result", async (event) => {
      source.close();  // else EventSource reconnects and replays the whole output
      const result = JSON.parse(event.data);
      const inventory = await execution(uuid).catch(() => null);
      if (inventory) {
        pane.finish(inventory);
      } else if (result.body?.error) {
        pane.setStatus(`error ${result.body.error.code}`, "Failed");
      }
      resolve(inventory);
    });
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        pane.setStatus("output stream closed", "Failed");
        resolve(null);
      }
    };
  });
}

/** Consecutive failed connections to a run's events before the console gives up. */
const RUN_RETRIES = 5;

/** Follow a run: panes by VM uuid; ``progress(counts)`` after each change. Resolves with
 *  the run's inventory once it ended. A run's events carry no ids, so a dropped stream is
 *  followed again from its start (the server replays the events so far) into cleared panes. */
export function followRun(uuid, panes, progress) {
  return new Promise((resolve) => {
    let failures = 0;
    const connect = () => {
      for (const pane of panes.values()) pane.clear();
      const counts = { done: 0, failed: 0, running: 0, skipped: 0 };
      progress(counts);
      const source = new EventSource(`${RUNS}/${uuid}/events`);
      const byExecution = new Map();
      const paneOf = (data) => byExecution.get(data.executionUuid) ?? panes.get(data.vmInstanceUuid);
      const on = (kind, handle) => source.addEventListener(kind, (event) => {
        failures = 0;
        handle(JSON.parse(event.data));
      });
      on("targetStarted", (data) => {
        const pane = panes.get(data.vmInstanceUuid);
        if (pane) {
          byExecution.set(data.executionUuid, pane);
          pane.running();
        }
        counts.running += 1;
        progress(counts);
      });
      on("output", (data) => paneOf(data)?.write(data.stream, data.text));
      on("targetFinished", async (data) => {
        counts.running -= 1;
        counts[data.state === "Succeeded" ? "done" : "failed"] += 1;
        progress(counts);
        const pane = paneOf(data);
        const inventory = await execution(data.executionUuid).catch(() => null);
        pane?.finish(inventory ?? data);
      });
      on("runFinished", async (data) => {
        source.close();
        const run = data.inventory;
        const targetCounts = run.targetCounts ?? {};
        counts.skipped = (targetCounts.Skipped ?? 0) + (targetCounts.Pending ?? 0);
        counts.running = 0;
        progress(counts, run);
        const reply = await query(`${RUNS}/${uuid}`).catch(() => null);
        for (const target of reply?.inventories?.[0]?.targets ?? []) {
          if (target.state === "Skipped" || target.state === "Pending") {
            panes.get(target.vmInstanceUuid)?.setStatus("Skipped", "Skipped");
          }
        }
        resolve(run);
      });
      source.onerror = () => {
        source.close();  // not EventSource's own retry: it would replay into full panes
        failures += 1;
        if (failures > RUN_RETRIES) {
          for (const pane of panes.values()) pane.setStatus("events lost", "Failed");
          resolve(null);
        } else {
          setTimeout(connect, 1000 * failures);
        }
      };
    };
    connect();
  });
}
