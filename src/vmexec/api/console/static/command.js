// The command editor: what the form says, as the API's params, and as a curl or CLI command
// line that does the same thing.
import { API } from "./api.js";

const $ = (id) => document.getElementById(id);

/** A count or a percentage, as maxConcurrency/maxErrors take them. */
function limit(text) {
  const value = text.trim();
  if (!value) return undefined;
  return /^\d+$/.test(value) ? Number(value) : value;
}

/** The form's environment: NAME=value lines. Throws on a line without "=". */
function environment(text) {
  const env = {};
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const at = line.indexOf("=");
    if (at < 1) throw new Error(`environment line "${line}" is not NAME=value`);
    env[line.slice(0, at)] = line.slice(at + 1);
  }
  return Object.keys(env).length ? env : undefined;
}

/** What to run and how (CommandParams), from the form. */
export function commandParams() {
  const params = { platform: $("platform").value, command: $("command").value };
  const timeout = $("timeout").value.trim();
  if (timeout) params.commandTimeout = Number(timeout);
  if ($("shell").value) params.shell = $("shell").value;
  if ($("cwd").value.trim()) params.workingDirectory = $("cwd").value.trim();
  if ($("run-as").value.trim()) params.runAs = $("run-as").value.trim();
  const env = environment($("env").value);
  if (env) params.env = env;
  return params;
}

/** Put a past command back in the form (history). */
export function fillForm(inventory) {
  $("command").value = inventory.command ?? "";
  if (inventory.platform) $("platform").value = inventory.platform;
  $("shell").value = inventory.shell && inventory.shell !== "default" ? inventory.shell : "";
}

/** The call the Run button makes for these VMs: [method, path, body]. */
export function request(vms) {
  const params = commandParams();
  if (vms.length === 1) {
    return ["PUT", `${API}/vm-instances/commands/exec`,
      { params: { vmInstanceUuid: vms[0].uuid, ...params } }];
  }
  const run = { ...params, targets: { vmInstanceUuids: vms.map((vm) => vm.uuid) } };
  const concurrency = limit($("max-concurrency").value);
  const errors = limit($("max-errors").value);
  if (concurrency !== undefined) run.maxConcurrency = concurrency;
  if (errors !== undefined) run.maxErrors = errors;
  return ["POST", `${API}/vm-instances/commands/runs`, { params: run }];
}

/** Quote for a POSIX shell. */
export function shellQuote(text) {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${String(text).replace(/'/g, "'\\''")}'`;
}

export function asCurl(vms) {
  const [method, path, body] = request(vms);
  return [
    "curl", "-X", method, shellQuote(`${location.origin}${path}`),
    "-H", '"Authorization: OAuth $SESSION"',
    "-H", shellQuote("Content-Type: application/json;charset=UTF-8"),
    "-d", shellQuote(JSON.stringify(body)),
  ].join(" ");
}

export function asCli(vms) {
  const params = commandParams();
  const words = ["vmexec", "exec"];
  if (params.commandTimeout) words.push("--timeout", String(params.commandTimeout));
  if (params.platform !== "Linux") words.push("--platform", params.platform);
  if (params.shell) words.push("--shell", params.shell);
  for (const [name, value] of Object.entries(params.env ?? {})) {
    words.push("--env", shellQuote(`${name}=${value}`));
  }
  if (params.workingDirectory) words.push("--cwd", shellQuote(params.workingDirectory));
  if (params.runAs) words.push("--user", shellQuote(params.runAs));
  if (vms.length > 1) {
    const concurrency = $("max-concurrency").value.trim();
    const errors = $("max-errors").value.trim();
    if (concurrency) words.push("--parallel", shellQuote(concurrency));
    if (errors) words.push("--max-errors", shellQuote(errors));
  }
  for (const vm of vms) words.push(shellQuote(vm.name));
  // One argument after --: the CLI joins its words into the script, so it arrives as typed.
  words.push("--", shellQuote(params.command));
  return words.join(" ");
}
