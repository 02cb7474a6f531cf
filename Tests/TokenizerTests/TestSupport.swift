// A scratch directory for the tokenizer tests' files.
import Foundation

/// A path named `name` in a fresh directory of its own under the temporary directory.
func scratchPath(_ name: String) -> String {
    let dir = NSTemporaryDirectory() + "nanochat-tests-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir + "/" + name
}
