// Bundles the official AG-UI client for the /ui page into one ES module.
//   npm ci --prefix ui && npm run --prefix ui build      # writes the committed bundle
//   node ui/build.mjs OUT.js                              # the same build elsewhere (the tests compare)
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const outfile = process.argv[2] ?? `${here}../agui_gateway/server/ui/static/vendor/agui-client.js`;

await build({
  entryPoints: [`${here}src/agui-client.js`],
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  legalComments: "eof",
  outfile,
  logLevel: "warning",
});
