// Run Renovate's own pip_requirements manager on the given requirements files and print what it
// extracts as JSON (and whether its default fileMatch sees each file):
//   node tools/node/extract-pip.js requirements.txt requirements-dev.txt ...
// The tests check that every Python requirement is an exact pin Renovate can bump.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const pip = require('renovate/dist/modules/manager/pip_requirements');

const out = [];
for (const file of process.argv.slice(2)) {
  const name = path.basename(file);
  const seen = pip.defaultConfig.fileMatch.some((re) => new RegExp(re).test(name));
  const result = pip.extractPackageFile(fs.readFileSync(file, 'utf8'), name, {});
  out.push({
    file: name,
    seen,
    deps: (result?.deps || []).map((dep) => ({
      depName: dep.depName,
      datasource: dep.datasource,
      currentValue: dep.currentValue,
      currentVersion: dep.currentVersion,
      skipReason: dep.skipReason,
    })),
  });
}
process.stdout.write(JSON.stringify(out, null, 2) + '\n');
