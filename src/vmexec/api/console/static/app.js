// The console: log in, pick VMs, run a command, watch its output; history. Plain ES modules
// on the same API as every other client (see api.js).
import { API, call, csrfToken } from "./api.js";
import { asCli, asCurl, fillForm, request } from "./command.js";
import { History } from "./history.js";
import { Pane, followExecution, followRun } from "./output.js";
import { VmList } from "./vms.js";

const $ = (id) => document.getElementById(id);
const SESSION = "/console/session";

let vms;
let history;
/** What runs now: {kind: "executions"|"runs", uuid}; the Cancel button cancels it. */
let current = null;

function show(view) {
  for (const id of ["login-view", "run-view", "history-view"]) $(id).hidden = id !== view;
  const loggedIn = view !== "login-view";
  $("tabs").hidden = !loggedIn;
  $("logout").hidden = !loggedIn;
  for (const tab of document.querySelectorAll(".tab")) {
    tab.setAttribute("aria-pressed", String(`${tab.dataset.tab}-view` === view));
  }
}

function showLogin() {
  show("login-view");
  $("account").focus();
}

async function start() {
  // The readable CSRF cookie comes and goes with the session cookie: without it there is no
  // session to ask about.
  if (!csrfToken()) {
    showLogin();
    return;
  }
  try {
    enter((await call("GET", SESSION)).inventory);
  } catch {
    showLogin();
  }
}

function enter(account) {
  $("who").textContent = account.accountName;
  show("run-view");
  if (!vms) {
    vms = new VmList($("run-view"), selectionChanged);
    history = new History(vms, openFromHistory);
  }
  vms.loadHosts().then(() => vms.load());
  selectionChanged([]);
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const reply = await call("POST", SESSION,
      { accountName: $("account").value, password: $("password").value });
    $("password").value = "";
    enter(reply.inventory);
  } catch (error) {
    $("login-error").textContent = error.message;
  }
});

$("logout").addEventListener("click", async () => {
  await call("DELETE", SESSION).catch(() => {});
  location.reload();
});

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    show(`${tab.dataset.tab}-view`);
    if (tab.dataset.tab === "history") history.load();
  });
}

function selectionChanged(selected) {
  const n = selected.length;
  $("selection").textContent = n === 0 ? "Select one VM or more." :
    n === 1 ? `on ${selected[0].name}` : `on ${n} VMs (a run)`;
}

function panesFor(targets, title) {
  $("activity").hidden = false;
  $("activity-title").textContent = title;
  $("progress").textContent = "";
  $("panes").replaceChildren();
  const panes = new Map();
  for (const vm of targets) panes.set(vm.uuid, new Pane($("panes"), vm.name));
  return panes;
}

function busy(what) {
  current = what;
  $("cancel").hidden = !what;
  $("cancel").disabled = false;
  $("run").disabled = Boolean(what);
}

function showProgress(counts, run) {
  const text = `done ${counts.done} · failed ${counts.failed} · running ${counts.running}` +
    ` · skipped ${counts.skipped}`;
  $("progress").textContent = run ? `${run.state}: ${text}` : text;
}

async function watchExecution(uuid, vm) {
  const panes = panesFor([vm], `Execution on ${vm.name}`);
  busy({ kind: "executions", uuid });
  try {
    await followExecution(uuid, panes.get(vm.uuid));
  } finally {
    busy(null);
  }
}

async function watchRun(uuid, targets) {
  const panes = panesFor(targets, `Run on ${targets.length} VMs`);
  busy({ kind: "runs", uuid });
  showProgress({ done: 0, failed: 0, running: 0, skipped: 0 });
  try {
    await followRun(uuid, panes, showProgress);
  } finally {
    busy(null);
  }
}

$("command-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("run-error").textContent = "";
  const targets = vms.selection();
  if (!targets.length) {
    $("run-error").textContent = "Select one VM or more first.";
    return;
  }
  try {
    const [method, path, body] = request(targets);
    if (targets.length === 1) {
      // Asynchronous: the reply names the execution (its job); the output comes live.
      const reply = await call(method, path, body, { Prefer: "respond-async" });
      const uuid = reply.location
        ? reply.location.split("/").pop()
        : null;
      if (!uuid) throw new Error("the command ended at once; see History");
      await watchExecution(uuid, targets[0]);
    } else {
      const reply = await call(method, path, body);
      await watchRun(reply.uuid, targets);
    }
  } catch (error) {
    $("run-error").textContent = error.message;
  }
});

$("cancel").addEventListener("click", async () => {
  if (!current) return;
  $("cancel").disabled = true;
  const { kind, uuid } = current;
  const action = kind === "runs" ? { cancelGuestVmCommandRun: {} } : { cancelGuestVmCommand: {} };
  try {
    await call("PUT", `${API}/vm-instances/commands/${kind}/${uuid}/actions`, action);
  } catch (error) {
    $("run-error").textContent = error.message;
    $("cancel").disabled = false;
  }
});

async function copy(text) {
  $("copied").hidden = false;
  $("copied").textContent = text;
  try { await navigator.clipboard.writeText(text); } catch { /* shown on the page anyway */ }
}

for (const [id, format] of [["copy-curl", asCurl], ["copy-cli", asCli]]) {
  $(id).addEventListener("click", () => {
    $("run-error").textContent = "";
    const targets = vms.selection();
    try {
      copy(format(targets.length ? targets : [{ uuid: "<vm uuid>", name: "<vm>" }]));
    } catch (error) {
      $("run-error").textContent = error.message;
    }
  });
}

/** Show a past execution's or run's output; the form and the selection become its command
 *  and its VMs, so Run, Copy as curl and Copy as CLI repeat it. */
async function openFromHistory(kind, item) {
  show("run-view");
  fillForm(item);
  if (kind === "executions") {
    const vm = vms.known.get(item.vmInstanceUuid) ?? { uuid: item.vmInstanceUuid, name: item.vmInstanceUuid };
    vms.select([vm]);
    await watchExecution(item.uuid, vm);
  } else {
    const run = await call("GET", `${API}/vm-instances/commands/runs/${item.uuid}`);
    const inventory = run.inventories[0];
    const targets = inventory.targets.map((target) => ({
      uuid: target.vmInstanceUuid, name: target.vmInstanceName,
    }));
    vms.select(targets);
    $("max-concurrency").value = inventory.maxConcurrency ?? "";
    $("max-errors").value = inventory.maxErrors ?? "";
    await watchRun(item.uuid, targets);
  }
}

start();
