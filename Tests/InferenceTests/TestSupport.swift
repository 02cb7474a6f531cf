// Where this target's tests find their files: the small tokenizer the tokenizer tests keep,
// and a scratch directory.
import Foundation

/// Tests/TokenizerTests/Fixtures: the test tokenizer (`/tokenizer`) and its cases.
let tokenizerFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("TokenizerTests/Fixtures").path

/// A path named `name` in a fresh directory of its own under the temporary directory.
func scratchPath(_ name: String) -> String {
    let dir = NSTemporaryDirectory() + "nanochat-tests-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir + "/" + name
}

/// Tests/InferenceTests/Fixtures: the rendered conversations.
let chatFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
