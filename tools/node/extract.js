// Run Renovate's own regex manager (the code the Renovate app runs) with the custom managers
// of renovate.json on the given files, and print what it extracts as JSON:
//   node tools/node/extract.js renovate.json Pulumi.pi-k3s.yaml ...
// The tests compare this with the pins they find in the stack files themselves.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const regexManager = require('renovate/dist/modules/manager/custom/regex');

const [configFile, ...files] = process.argv.slice(2);
const config = JSON.parse(fs.readFileSync(configFile, 'utf8'));
const out = [];
for (const file of files) {
  const content = fs.readFileSync(file, 'utf8');
  const name = path.basename(file);
  (config.customManagers || []).forEach((manager, index) => {
    const applies = (manager.fileMatch || []).some((re) => new RegExp(re).test(name));
    if (!applies) return;
    const result = regexManager.extractPackageFile(content, name, manager);
    for (const dep of result?.deps || []) {
      out.push({
        file: name,
        manager: index,
        datasource: dep.datasource,
        depName: dep.depName,
        packageName: dep.packageName,
        currentValue: dep.currentValue,
        currentDigest: dep.currentDigest,
        registryUrls: dep.registryUrls,
        versioning: dep.versioning,
      });
    }
  });
}
process.stdout.write(JSON.stringify(out, null, 2) + '\n');
