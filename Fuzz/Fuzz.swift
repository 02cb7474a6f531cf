// libFuzzer targets for the readers of untrusted files: the safetensors reader, the checkpoint
// meta reader, the config parser (with the settings it resolves), the tokenizer loaders (ours
// and Hugging Face's tokenizer.json) and
// the token shard reader, the parquet reader and the JSONL (plain and zstd) reader. One binary; NANOCHAT_FUZZ_TARGET picks the reader. Every input
// must give a value or a thrown error: a trap, an out-of-bounds access (AddressSanitizer)
// or a hang is a finding. scripts/fuzz.sh builds and runs it.
//
// SwiftPM links an executable's entry point as `<module>_main`; with the Fuzzing trait that
// is libFuzzer's driver, given the test function (scripts/fuzz.sh builds it with
// -sanitize=fuzzer,address); without it, a main that says how to build the targets.
import Blocks
import Corpus
import Foundation
import Tensor
import Train
import Tokenizer
import Interop

enum FuzzTarget: String, CaseIterable {
    case safetensors, meta, config, tokenizer, hftokenizer, shard, parquet, jsonl
}

let target: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["NANOCHAT_FUZZ_TARGET"] ?? ""
    guard let t = FuzzTarget(rawValue: name) else {
        let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
        FileHandle.standardError.write(Data("set NANOCHAT_FUZZ_TARGET to one of: \(names)\n".utf8))
        exit(2)
    }
    return t
}()

/// Where the file targets write their input, so the readers open a real file.
let shardPath = "/dev/shm/nanochat-fuzz-\(getpid()).bin"
let parquetPath = "/dev/shm/nanochat-fuzz-\(getpid()).parquet"
let jsonlPath = "/dev/shm/nanochat-fuzz-\(getpid()).jsonl"
let zstdPath = "/dev/shm/nanochat-fuzz-\(getpid()).jsonl.zst"

/// Every document of `path`, skipping bad rows, stopping at an error.
func readDocuments(_ path: String) {
    guard let file = try? CorpusFile(path: path) else { return }
    let stream = DocumentStream(files: [file], options: DocumentOptions(skipBad: true, maxDocumentBytes: 4096))
    while let d = try? stream.next() { _ = d.utf8.count }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(bytes: bytes, count: count)
    switch target {
    case .safetensors:
        if let (tensors, _) = try? Safetensors.parse(data, path: "input") {
            for (_, t) in tensors { _ = Safetensors.firstNonFinite(t) }
        }
    case .meta:
        if let config = try? Checkpoint.modelConfig(fromMeta: data, path: "input") {
            // What loading does next with a valid config: sizes and the parameter list.
            _ = config.parameterSpecs.count
            _ = config.flopsPerToken
            _ = try? config.checkFitsInMemory(Double(config.weightBytes), for: "fuzzing")
        }
        _ = try? JSONDecoder().decode(TrainingMeta.self, from: data)
    case .config:
        let text = String(decoding: data, as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        // The last line, when it starts with --, is an override as the command line gives it.
        let override = lines.last.flatMap { $0.hasPrefix("--") ? String($0) : nil }
        if override != nil { lines.removeLast() }
        if var file = try? ConfigFile.parse(lines.joined(separator: "\n"), file: "input", schema: TrainingKeys.byName) {
            if let override { _ = try? file.override(override) }
            if let settings = try? TrainSettings.resolve(file, path: "input.py", vocabSize: 300) {
                _ = settings.accumulation
                _ = settings.evalBatches
                _ = settings.model.parameterCount
            }
        }
    case .tokenizer:
        if let tok = try? Tokenizer.parseRanks(data, path: "input") {
            let ids = tok.encodeSerially("Hello, wörld! 123 \n\n  tokens ✓")
            _ = try? tok.decode(ids)
            _ = tok.identity
        }
    case .hftokenizer:
        if let tok = try? Tokenizer.fromHuggingFace(data, path: "input") {
            let ids = tok.encodeSerially("Hello, wörld! 123 \n\n  tokens ✓")
            _ = try? tok.decode(ids)
            _ = tok.identity
        }
    case .shard:
        guard FileManager.default.createFile(atPath: shardPath, contents: data) else { return 0 }
        defer { unlink(shardPath) }
        if let shard = try? TokenShard(path: shardPath) {
            _ = try? shard.validate(vocabSize: 300)
            var loader = BatchLoader(shard: shard, batch: 2, sequence: 3)
            var batches = 0
            while batches < 64, loader.next() != nil { batches += 1 }
        }
    case .parquet:
        guard FileManager.default.createFile(atPath: parquetPath, contents: data) else { return 0 }
        defer { unlink(parquetPath) }
        readDocuments(parquetPath)
    case .jsonl:
        // The same bytes as JSONL and as a zstd frame of JSONL.
        for path in [jsonlPath, zstdPath] {
            guard FileManager.default.createFile(atPath: path, contents: data) else { return 0 }
            readDocuments(path)
            unlink(path)
        }
    }
    return 0
}

#if Fuzzing
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ test: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

@_cdecl("nanochat_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    _ = target   // an unknown target name stops here, before fuzzing starts
    var count = argc
    var vector = argv
    return runFuzzerDriver(&count, &vector, fuzzOne)
}
#else
@main
enum FuzzUnavailable {
    static func main() {
        FileHandle.standardError.write(Data("nanochat-fuzz was built without libFuzzer: run scripts/fuzz.sh\n".utf8))
        exit(2)
    }
}
#endif
