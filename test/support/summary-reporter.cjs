// Prints the plain closing line that CI reads, `N passed, N failed`. Jest prints its own summary
// after custom reporters, so the line is written when the process exits, to be the last one.
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    const line = `${results.numPassedTests} passed, ${failed} failed`;
    process.once('exit', () => process.stdout.write(`\n${line}\n`));
  }
}
module.exports = SummaryReporter;
