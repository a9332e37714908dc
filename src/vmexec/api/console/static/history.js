// History: executions or runs, newest first, with filters; each opens its output.
import { API, query } from "./api.js";
import { duration } from "./output.js";

const LIMIT = 100;
const $ = (id) => document.getElementById(id);

export class History {
  /** ``vms``: the VM list (names); ``open(kind, inventory)`` shows one's output. */
  constructor(vms, open) {
    this.vms = vms;
    this.open = open;
    for (const id of ["history-kind", "history-state", "history-command", "history-vm"]) {
      $(id).addEventListener("input", () => this.load());
    }
    $("history-refresh").addEventListener("click", () => this.load());
  }

  fillVms() {
    const select = $("history-vm");
    const seen = new Set([...select.options].map((option) => option.value));
    for (const vm of this.vms.known.values()) {
      if (!seen.has(vm.uuid)) select.append(new Option(vm.name, vm.uuid));
    }
  }

  async load() {
    this.fillVms();
    const kind = $("history-kind").value;
    $("history-vm").disabled = kind === "runs";
    const q = [];
    const state = $("history-state").value;
    const command = $("history-command").value.trim();
    if (state) q.push(`state=${state}`);
    if (command) q.push(`command~=%${command}%`);
    if (kind === "executions" && $("history-vm").value) {
      q.push(`vmInstanceUuid=${$("history-vm").value}`);
    }
    let reply;
    try {
      reply = await query(`${API}/vm-instances/commands/${kind}`,
        { q, sort: "-createDate", limit: LIMIT });
    } catch (error) {
      $("history-message").textContent = error.message;
      return;
    }
    $("history-message").textContent = reply.inventories.length ? "" : "Nothing yet.";
    const rows = reply.inventories.map((item) => this.row(kind, item));
    document.querySelector("#history-table tbody").replaceChildren(...rows);
  }

  row(kind, item) {
    const row = document.createElement("tr");
    let target;
    let result;
    if (kind === "executions") {
      target = this.vms.known.get(item.vmInstanceUuid)?.name ?? item.vmInstanceUuid;
      if (item.errorCode) result = item.errorCode;
      else if (item.exitCode !== undefined && item.exitCode !== null) result = `exit ${item.exitCode}`;
      else result = "";
    } else {
      const counts = item.targetCounts ?? {};
      target = `${Object.values(counts).reduce((a, b) => a + b, 0)} VMs`;
      result = Object.entries(counts).filter(([, n]) => n).map(([s, n]) => `${n} ${s}`).join(", ");
    }
    const open = document.createElement("button");
    open.type = "button";
    open.textContent = "Open";
    open.setAttribute("aria-label", `Open ${kind === "runs" ? "run" : "execution"} ${item.uuid}`);
    open.addEventListener("click", () => this.open(kind, item));
    const cells = [item.createDate ?? "", item.command ?? "", target, item.state, result,
      item.durationMs !== undefined && item.durationMs !== null ? duration(item.durationMs) : "",
      open];
    for (const content of cells) {
      const cell = document.createElement("td");
      cell.append(content);
      row.append(cell);
    }
    row.children[1].className = "command-cell";
    row.dataset.uuid = item.uuid;
    return row;
  }
}
