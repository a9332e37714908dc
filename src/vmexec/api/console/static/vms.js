// The VM list: QueryVmInstance with search (name, state, host), sorting, each VM's agent
// status (GetVmGuestToolsInfo), and a checkbox per VM labelled with its name.
import { API, call, query } from "./api.js";

const LIMIT = 500;
/** Agent statuses asked at once: each is a live call to a guest agent. */
const AGENT_CONCURRENCY = 4;

export class VmList {
  constructor(root, onSelection) {
    this.root = root;
    this.onSelection = onSelection;
    this.body = root.querySelector("tbody");
    this.message = root.querySelector("#vm-message");
    this.sort = { field: "name", ascending: true };
    this.vms = [];
    /** Every VM seen, by uuid (history shows names). */
    this.known = new Map();
    this.hosts = new Map();
    this.selected = new Set();
    this.generation = 0;
    for (const id of ["#vm-name", "#vm-state", "#vm-host"]) {
      root.querySelector(id).addEventListener("input", () => this.load());
    }
    for (const button of root.querySelectorAll("button.sort")) {
      button.addEventListener("click", () => this.sortBy(button.dataset.sort));
    }
    root.querySelector("#vm-all").addEventListener("change", (event) => {
      for (const vm of this.vms) this.toggle(vm.uuid, event.target.checked);
      this.render();
    });
  }

  async loadHosts() {
    try {  // QueryHost is for admins; others filter by the hosts their VMs are on.
      const reply = await query(`${API}/hosts`, { limit: LIMIT });
      for (const host of reply.inventories) this.hosts.set(host.uuid, host.name);
    } catch { /* not an admin: host uuids are shown */ }
  }

  hostName(uuid) {
    return this.hosts.get(uuid) ?? (uuid ? uuid.slice(0, 8) : "");
  }

  conditions() {
    const q = [];
    const name = this.root.querySelector("#vm-name").value.trim();
    const state = this.root.querySelector("#vm-state").value;
    const host = this.root.querySelector("#vm-host").value;
    if (name) q.push(`name~=%${name}%`);
    if (state) q.push(`state=${state}`);
    if (host) q.push(`hostUuid=${host}`);
    return q;
  }

  async load() {
    const generation = ++this.generation;
    const sort = `${this.sort.ascending ? "+" : "-"}${this.sort.field}`;
    let reply;
    try {
      reply = await query(`${API}/vm-instances`, { q: this.conditions(), sort, limit: LIMIT });
    } catch (error) {
      this.message.textContent = error.message;
      return;
    }
    if (generation !== this.generation) return;  // a newer search answered first
    this.vms = reply.inventories;
    for (const vm of this.vms) this.known.set(vm.uuid, vm);
    this.fillHostFilter();
    this.message.textContent = this.vms.length ? "" : "No VM matches.";
    this.render();
    this.loadAgents(generation);
  }

  fillHostFilter() {
    const select = this.root.querySelector("#vm-host");
    const seen = new Set([...select.options].map((option) => option.value));
    for (const vm of this.known.values()) {
      if (vm.hostUuid && !seen.has(vm.hostUuid)) {
        seen.add(vm.hostUuid);
        select.append(new Option(this.hostName(vm.hostUuid), vm.hostUuid));
      }
    }
  }

  sortBy(field) {
    this.sort = { field, ascending: this.sort.field === field ? !this.sort.ascending : true };
    for (const button of this.root.querySelectorAll("button.sort")) {
      const th = button.closest("th");
      if (button.dataset.sort === field) {
        th.setAttribute("aria-sort", this.sort.ascending ? "ascending" : "descending");
      } else {
        th.removeAttribute("aria-sort");
      }
    }
    this.load();
  }

  toggle(uuid, on) {
    if (on) this.selected.add(uuid); else this.selected.delete(uuid);
    this.onSelection(this.selection());
  }

  /** Select exactly these VMs (a command opened from history), named as given when the
   *  list does not show them. */
  select(targets) {
    this.selected = new Set(targets.map((vm) => vm.uuid));
    for (const vm of targets) if (!this.known.has(vm.uuid)) this.known.set(vm.uuid, vm);
    this.render();
    this.onSelection(this.selection());
  }

  /** The selected VMs, in the list's order. */
  selection() {
    return [...this.selected].map((uuid) => this.known.get(uuid)).filter(Boolean);
  }

  render() {
    const rows = this.vms.map((vm) => {
      const row = document.createElement("tr");
      row.dataset.uuid = vm.uuid;
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = this.selected.has(vm.uuid);
      box.setAttribute("aria-label", vm.name);
      box.addEventListener("change", () => this.toggle(vm.uuid, box.checked));
      const cells = [box, vm.name, vm.state, this.hostName(vm.hostUuid), vm.agent ?? "…"];
      for (const content of cells) {
        const cell = document.createElement("td");
        cell.append(content);
        row.append(cell);
      }
      row.children[2].className = `state state-${vm.state}`;
      row.children[4].className = "agent";
      return row;
    });
    this.body.replaceChildren(...rows);
  }

  async loadAgents(generation) {
    const queue = [...this.vms];
    const worker = async () => {
      while (queue.length && generation === this.generation) {
        const vm = queue.shift();
        if (vm.state !== "Running") {
          vm.agent = "Not Connected";
        } else {
          try {
            const info = await call("GET", `${API}/vm-instances/${vm.uuid}/guest-tools-infos`);
            vm.agent = info.status + (info.version ? ` ${info.version}` : "");
          } catch (error) {
            vm.agent = error.code ?? "unknown";
          }
        }
        const cell = this.body.querySelector(`tr[data-uuid="${vm.uuid}"] td.agent`);
        if (cell) cell.textContent = vm.agent;
      }
    };
    await Promise.all(Array.from({ length: AGENT_CONCURRENCY }, worker));
  }
}
