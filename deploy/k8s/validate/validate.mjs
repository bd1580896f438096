// validate.mjs: checks Kubernetes objects against the models of
// kubernetes-models (built-in kinds) and @kubernetes-models/keda (KEDA's
// kinds), offline. Reads a JSON array of objects on stdin; prints a JSON
// array with one entry per object: {"index": i, "errors": [...]} (empty
// when valid), or {"index": i, "unknown": true} for a kind neither package
// models. Run by deploy/k8s's Go test (k8s_test.go), which installs the
// pinned packages with `npm ci` first; it also validates, strictly, what
// these models do not (unknown fields, the operators' kinds).
import { readFileSync } from "node:fs";

// modelPath is the module of the model of obj's kind: the packages name
// their folders by API group ("v1" for the core group).
function modelPath(obj) {
  const group = obj.apiVersion.includes("/") ? obj.apiVersion.split("/")[0] : "";
  const pkg = group === "keda.sh" ? "@kubernetes-models/keda" : "kubernetes-models";
  return `${pkg}/${obj.apiVersion}/${obj.kind}`;
}

// errorsOf validates obj with its model: the errors, [] when valid, or null
// for a kind that has no model here.
async function errorsOf(obj) {
  let mod;
  try {
    mod = await import(modelPath(obj));
  } catch (e) {
    if (e.code === "ERR_MODULE_NOT_FOUND" || e.code === "ERR_PACKAGE_PATH_NOT_EXPORTED") return null;
    throw e;
  }
  const Model = mod[obj.kind] ?? mod.default;
  try {
    new Model(obj).validate();
    return [];
  } catch (e) {
    if (!e.errors) throw e;
    return e.errors.map((v) => `${v.instancePath || "/"}: ${v.keyword} ${JSON.stringify(v.params)}`);
  }
}

const objects = JSON.parse(readFileSync(0, "utf8"));
const out = [];
for (const [index, obj] of objects.entries()) {
  const errors = await errorsOf(obj);
  out.push(errors === null ? { index, unknown: true } : { index, errors });
}
process.stdout.write(JSON.stringify(out));
