// Replace leaflet-measure's five underscore templates (compiled with `new Function` when the file loads)
// by the functions underscore itself compiles from them, so the file runs under a CSP without 'unsafe-eval'.
// Usage (on the file from the npm tarball): node precompile-templates.js leaflet-measure.min.js out.js
const fs = require("fs");
const [input, output] = process.argv.slice(2);
const text = fs.readFileSync(input, "utf8");

// 1. Run the bundle once with a stub Leaflet, recording what underscore hands to `new Function`.
const compiled = [];
const RealFunction = Function;
const stub = new Proxy(function () {}, {get: (t, k) => (k === Symbol.toPrimitive ? () => "" : stub),
                                         apply: () => stub, construct: () => stub});
globalThis.window = {L: stub};
globalThis.Function = function (...args) { compiled.push(args); return RealFunction(...args); };
globalThis.Function.prototype = RealFunction.prototype;
try { RealFunction(text)(); } catch (e) { console.error("bundle run:", e.message); }
globalThis.Function = RealFunction;

// 2. Find the template calls: c.template('…') with a single-quoted literal.
const calls = [];
const re = /c\.template\('/g;
let m;
while ((m = re.exec(text))) {
  let i = m.index + m[0].length;
  while (text[i] !== "'") i += text[i] === "\\" ? 2 : 1;
  calls.push({start: m.index, end: i + 2, literal: text.slice(m.index + 11, i + 1)});  // end: past "')"
}
if (calls.length !== 5 || compiled.length !== 5) throw new Error(`found ${calls.length} calls, ${compiled.length} compilations`);

// 3. Each call becomes what _.template returns: function (data) { return render.call(this, data, _); }.
let out = "", at = 0;
calls.forEach((call, k) => {
  const [variable, underscore, source] = compiled[k];
  const render = `function(${variable},${underscore}){${source}}`;
  RealFunction(`return ${render}`);  // must parse
  out += text.slice(at, call.start) + `(function(r){return function(d){return r.call(this,d,c)}})(${render})`;
  at = call.end;
});
out += text.slice(at);
fs.writeFileSync(output, out);
console.log(`replaced ${calls.length} templates`);
