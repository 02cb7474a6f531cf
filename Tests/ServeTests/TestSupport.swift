// Where this target's tests find their files: the small tokenizer the tokenizer tests keep.
import Foundation

/// Tests/TokenizerTests/Fixtures: the test tokenizer (`/tokenizer`) and its cases.
let tokenizerFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("TokenizerTests/Fixtures").path
