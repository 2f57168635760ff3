// /docs: the operations of /openapi.json as a plain page, from this package (no CDN, works offline).
"use strict";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function resolve(spec, schema) {
  const seen = new Set();
  while (schema && schema.$ref && !seen.has(schema.$ref)) {
    seen.add(schema.$ref);
    schema = schema.$ref.split("/").slice(1).reduce((o, k) => (o || {})[k], spec);
  }
  return schema || {};
}

function typeOf(spec, s) {
  s = resolve(spec, s);
  if (s.anyOf) return s.anyOf.map((x) => typeOf(spec, x)).join(" | ");
  if (s.type === "array") return `${typeOf(spec, s.items)}[]`;
  if (s.format === "binary") return "file";
  if (s.enum) return s.enum.map((x) => JSON.stringify(x)).join(" | ");
  if (s.properties) return `{${Object.keys(s.properties).join(", ")}}`;
  return s.type || "any";
}

function fields(spec, schema) {
  schema = resolve(spec, schema);
  const table = el("table");
  const required = new Set(schema.required || []);
  for (const [name, prop] of Object.entries(schema.properties || {})) {
    const row = el("tr");
    row.append(el("td", name + (required.has(name) ? " *" : "")), el("td", typeOf(spec, prop)),
      el("td", resolve(spec, prop).description || ""));
    table.append(row);
  }
  return table;
}

async function main() {
  const status = document.getElementById("status");
  let spec;
  try { spec = await (await fetch("/openapi.json")).json(); } catch (e) { status.textContent = String(e); return; }
  status.textContent = `${spec.info.title} ${spec.info.version}`;
  const box = document.getElementById("operations");
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const section = el("section", undefined, "operation");
      section.append(el("h2", `${method.toUpperCase()} ${path}`));
      if (op.description || op.summary) section.append(el("p", op.summary || op.description));
      const params = (op.parameters || []).map((p) => `${p.name} (${p.in}${p.required ? ", required" : ""})`);
      if (params.length) section.append(el("p", `parameters: ${params.join(", ")}`));
      const body = op.requestBody && op.requestBody.content;
      if (body) {
        section.append(el("p", `body: ${Object.keys(body).join(" or ")}`));
        section.append(fields(spec, Object.values(body)[0].schema));
      }
      section.append(el("p", `responses: ${Object.keys(op.responses || {}).join(", ")}`, "hint"));
      box.append(section);
    }
  }
}

main();
