// Validate one AsyncAPI document (read from stdin) with @asyncapi/parser, the AsyncAPI Initiative's
// parser: the spec's JSON Schema and its semantic rules (Spectral). Prints the diagnostics as JSON;
// exits 1 when any is an error.
import { Parser } from "@asyncapi/parser";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { document, diagnostics } = await new Parser().parse(Buffer.concat(chunks).toString("utf8"));
const found = diagnostics.map((d) => ({
  severity: ["error", "warning", "information", "hint"][d.severity],
  code: d.code,
  path: d.path.join("/"),
  message: d.message,
}));
process.stdout.write(JSON.stringify({ valid: document !== undefined, diagnostics: found }) + "\n");
process.exit(document !== undefined && !found.some((d) => d.severity === "error") ? 0 : 1);
