// Vendor the page's charting library into the Python package, once, at `make venv` time.
//
// tracker/page/library.json pins the npm package, its version and the registry's
// sha512 integrity of the tarball; the tarball is fetched with `npm pack` (the
// npm client, through whatever registry and proxy npm is configured with),
// checked against that integrity, and the listed files are copied into
// tracker/page/static/vendor/. The worker then serves them itself: nothing is
// fetched from the internet at run time.
//
// Usage: node deploy/page/vendor.mjs [LOCK [OUT_DIR]]
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const lockPath = process.argv[2] ?? join(root, "tracker", "page", "library.json");
const outDir = process.argv[3] ?? join(root, "tracker", "page", "static", "vendor");
const lock = JSON.parse(readFileSync(lockPath, "utf8"));
const work = mkdtempSync(join(tmpdir(), "tracker-page-"));
try {
  const packed = JSON.parse(
    execFileSync("npm", ["pack", `${lock.package}@${lock.version}`, "--json", "--silent", "--pack-destination", work], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    }),
  );
  const tarball = join(work, packed[0].filename);
  const integrity = "sha512-" + createHash("sha512").update(readFileSync(tarball)).digest("base64");
  if (integrity !== lock.integrity) {
    throw new Error(`${lock.package}@${lock.version}: integrity ${integrity}, expected ${lock.integrity} (${lockPath})`);
  }
  execFileSync("tar", ["-xzf", tarball, "-C", work, ...Object.keys(lock.files)]);
  mkdirSync(outDir, { recursive: true });
  for (const [inside, name] of Object.entries(lock.files)) {
    copyFileSync(join(work, inside), join(outDir, name));
  }
  console.log(`vendored ${lock.package}@${lock.version} into ${outDir}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
