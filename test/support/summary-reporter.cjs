// Prints the plain closing line that CI reads, `N passed, N failed`. Jest prints its own summary
// after custom reporters, so the line is written when the process exits, to be the last one —
// synchronously: with forceExit jest ends by process.exit, and an asynchronous write to a pipe
// would be lost.
const { writeSync } = require('node:fs');

class SummaryReporter {
  onRunComplete(_contexts, results) {
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    const line = `${results.numPassedTests} passed, ${failed} failed`;
    process.once('exit', () => writeSync(1, `\n${line}\n`));
  }
}
module.exports = SummaryReporter;
