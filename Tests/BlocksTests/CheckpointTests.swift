// safetensors and checkpoints: exact round trips, atomic writes, and errors that name the
// file and the tensor.
import Foundation
import Testing
import Tensor
import Blocks

func temporaryDirectory(_ label: String) -> String {
    let dir = NSTemporaryDirectory() + "nanochat-test-\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

extension BlocksTests {
    @Suite struct CheckpointTests {
        /// Paths as users type them, one-character names from a parsed argument among them
        /// (a substring's copy, on which Foundation's own parent lookup traps).
        @Test func parentDirectoriesOfTypedPaths() throws {
            let argument = "--output_dir=a"
            let typed = String(argument.split(separator: "=", maxSplits: 1)[1])
            let cases = [(typed, ""), ("a/", ""), ("runs/d12", "runs"), ("runs/d12/", "runs"), ("/data", "/"), ("/", "/"),
                         ("a//b", "a"), ("./x", "."), ("", ""), ("/a/b/c.safetensors", "/a/b")]
            for (path, parent) in cases { #expect(AtomicFile.parentDirectory(path) == parent, "parent of \"\(path)\"") }
            // Missing parents are made, from a path given as a parsed argument.
            let dir = temporaryDirectory("parent")
            let given = "--out=\(dir)/x/y/z"
            try AtomicFile.makeDirectories(String(given.split(separator: "=", maxSplits: 1)[1]))
            var isDirectory: ObjCBool = false
            #expect(FileManager.default.fileExists(atPath: dir + "/x/y/z", isDirectory: &isDirectory) && isDirectory.boolValue)
        }

        /// A writer killed mid-write leaves NAME.tmp-PID: removed once that process is gone;
        /// this process's own, a living process's, and files of other names are left alone.
        @Test func staleTemporaryFilesOfDeadWritersAreRemoved() throws {
            let finished = Process()
            finished.executableURL = URL(fileURLWithPath: "/bin/true")
            try finished.run()
            finished.waitUntilExit()
            let dead = finished.processIdentifier
            let dir = temporaryDirectory("stale")
            let names = ["model.safetensors.tmp-\(dead)", "meta.json.tmp-\(getpid())", "a.tmp-1", "b.tmp-0", "c.tmp-x",
                         "d.tmp-\(dead)x", "e.safetensors", "tmp-\(dead)"]
            for name in names { try Data([1]).write(to: URL(fileURLWithPath: "\(dir)/\(name)")) }
            #expect(AtomicFile.removeStale(in: dir) == ["model.safetensors.tmp-\(dead)"])
            let left = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
            #expect(left == names.dropFirst().sorted())
            #expect(AtomicFile.removeStale(in: dir + "/missing").isEmpty)
        }

        /// A folder a command would write into is refused while it holds anything (or, given
        /// names, any of those), naming what it holds and how to replace it; a missing folder,
        /// and one holding only a run lock, temporary files or a staging folder, are taken.
        @Test func anOutputFolderHoldingResultsIsRefused() throws {
            let dir = temporaryDirectory("output")
            try OutputDirectory.requireEmpty(dir + "/missing", what: "x", flag: nil)
            for name in [".lock", "model.safetensors.tmp-12", ".next-7"] {
                try Data([1]).write(to: URL(fileURLWithPath: "\(dir)/\(name)"))
            }
            try OutputDirectory.requireEmpty(dir, what: "an exported model", flag: "--overwrite")
            try Data([1]).write(to: URL(fileURLWithPath: "\(dir)/notes.txt"))
            let isData = { (name: String) in name == "data.json" || name.hasPrefix("shard_") }
            try OutputDirectory.requireEmpty(dir, of: isData, what: "a prepared dataset", flag: "--overwrite")
            try Data([1]).write(to: URL(fileURLWithPath: "\(dir)/data.json"))
            let refusals: [(names: ((String) -> Bool)?, shown: String)] = [(nil, "data.json, notes.txt"), (isData, "data.json")]
            for refusal in refusals {
                for flag in ["--overwrite", nil] {
                    #expect {
                        try OutputDirectory.requireEmpty(dir, of: refusal.names, what: "an exported model", flag: flag)
                    } throws: { error in
                        let text = "\(error)"
                        let how = flag == nil ? "give an empty or new directory" : "give --overwrite to replace them"
                        return text.contains("already holds \(refusal.shown);") && text.contains(dir) && text.contains(how)
                            && text.contains("writing an exported model there")
                    }
                }
            }
            for i in 0..<5 { try Data([1]).write(to: URL(fileURLWithPath: "\(dir)/shard_\(i).bin")) }
            #expect {
                try OutputDirectory.requireEmpty(dir, of: isData, what: "a prepared dataset", flag: nil)
            } throws: { "\($0)".contains("already holds data.json, shard_0.bin, shard_1.bin, shard_2.bin, ...;") }
        }

        /// A write into a folder takes the place of the files it writes only once it has
        /// finished, merging folders file by file and keeping other files; one that fails
        /// leaves the folder as it was. Neither leaves its staging folder behind.
        @Test func anOutputIsInstalledWholeOrNotAtAll() throws {
            let dir = temporaryDirectory("install")
            let fm = FileManager.default
            func write(_ text: String, _ path: String) throws {
                try AtomicFile.makeDirectories(AtomicFile.parentDirectory(path))
                try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            }
            func read(_ name: String) -> String? { fm.contents(atPath: "\(dir)/\(name)").map { String(decoding: $0, as: UTF8.self) } }
            try write("old", "\(dir)/model.bin"); try write("mine", "\(dir)/keep.txt"); try write("old", "\(dir)/sub/a")
            try write("mine", "\(dir)/sub/own")
            struct Failed: Error {}
            #expect(throws: Failed.self) {
                try OutputDirectory.install(into: dir) { stage in
                    try write("half", "\(stage)/model.bin")
                    throw Failed()
                }
            }
            #expect(read("model.bin") == "old" && read("sub/a") == "old")
            let answer = try OutputDirectory.install(into: dir, last: "index.json") { stage -> Int in
                try write("new", "\(stage)/model.bin"); try write("new", "\(stage)/sub/a"); try write("i", "\(stage)/index.json")
                return 42
            }
            #expect(answer == 42)
            #expect(read("model.bin") == "new" && read("sub/a") == "new" && read("index.json") == "i")
            #expect(read("keep.txt") == "mine" && read("sub/own") == "mine")
            #expect(try fm.contentsOfDirectory(atPath: dir).sorted() == ["index.json", "keep.txt", "model.bin", "sub"])
        }

        /// Linux moves at most 2 GiB - 4 KiB in one write(2) (the float32 weights of a model past
        /// about 537 M parameters are more): `writeAll` finishes with more calls, each byte once. The
        /// buffer is untouched anonymous memory (zero pages, no resident cost) sent down a pipe
        /// to a reader that counts; the mapping goes on past the buffer, so that a call reading
        /// beyond its end would be counted rather than fault.
        @Test func aWriteLargerThanOneSystemCallMovesIsFinishedByMore() throws {
            let size = (1 << 31) + (1 << 20), mapped = 5 << 30
            let memory = mmap(nil, mapped, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
            guard let memory, memory != MAP_FAILED else { Issue.record("cannot map \(mapped) bytes"); return }
            defer { munmap(memory, mapped) }
            var ends: [Int32] = [0, 0]
            try #require(pipe(&ends) == 0)
            _ = fcntl(ends[1], 1031, 1 << 20)   // F_SETPIPE_SZ (Linux; not exported to Swift): fewer, larger reads
            let counted = Counted(), readEnd = ends[0]
            let reader = Thread {
                var chunk = [UInt8](repeating: 0, count: 1 << 20)
                while true {
                    let n = chunk.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    counted.add(n)
                }
                close(readEnd)
                counted.finish()
            }
            reader.start()
            let failure = AtomicFile.writeAll(ends[1], UnsafeRawBufferPointer(start: memory, count: size))
            close(ends[1])
            counted.waitUntilFinished()
            #expect(failure == nil)
            #expect(counted.total == size)
        }

        @Test func safetensorsRoundTripIsExact() throws {
            let dir = temporaryDirectory("st")
            var g = SeededGenerator(seed: 1)
            let a = Tensor.randomNormal([3, 5], generator: &g), b = Tensor.randomNormal([7], dtype: .float64, generator: &g)
            let path = dir + "/x.safetensors"
            try Safetensors.write([("a.weight", a), ("b", b)], metadata: ["format": "pt"], to: path)
            let (read, meta) = try Safetensors.read(path)
            #expect(read.map(\.0) == ["a.weight", "b"])
            #expect(read[0].1.shape == [3, 5] && read[0].1.floats.map(\.bitPattern) == a.floats.map(\.bitPattern))
            #expect(read[1].1.dtype == .float64 && read[1].1.doubles == b.doubles)
            #expect(meta == ["format": "pt"])
            // The header length is a multiple of 8 and no temporary file is left behind.
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            #expect(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } % 8 == 0)
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["x.safetensors"])
            // The layout read by the format's own rules, not by our reader: a u64 LE header
            // length, a JSON header (dtype, shape, data_offsets from the data section's start),
            // then each tensor's little-endian values.
            let length = Int(bytes.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
            let header = try #require(try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + length))) as? [String: Any])
            #expect(header["__metadata__"] as? [String: String] == ["format": "pt"])
            let first = try #require(header["a.weight"] as? [String: Any]), second = try #require(header["b"] as? [String: Any])
            #expect(first["dtype"] as? String == "F32" && first["shape"] as? [Int] == [3, 5] && first["data_offsets"] as? [Int] == [0, 60])
            #expect(second["dtype"] as? String == "F64" && second["shape"] as? [Int] == [7] && second["data_offsets"] as? [Int] == [60, 116])
            #expect(bytes.count == 8 + length + 116)
            let data = bytes.subdata(in: (8 + length)..<bytes.count)
            let floats = (0..<15).map { i in Float(bitPattern: data.subdata(in: (4 * i)..<(4 * i + 4)).withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }) }
            let doubles = (0..<7).map { i in Double(bitPattern: data.subdata(in: (60 + 8 * i)..<(68 + 8 * i)).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }) }
            #expect(floats == a.floats && doubles == b.doubles)
        }

        @Test func truncatedFileNamesFileAndTensor() throws {
            let dir = temporaryDirectory("trunc")
            let path = dir + "/m.safetensors"
            try Safetensors.write([("first", Tensor(zeros: [4])), ("second", Tensor(zeros: [4, 4]))], to: path)
            let full = try Data(contentsOf: URL(fileURLWithPath: path))
            try full.prefix(full.count - 10).write(to: URL(fileURLWithPath: path))
            #expect(throws: TensorFileError(path: path, tensor: "second",
                                            "truncated: data ends at byte 80 of the data section, which has 70")) {
                try Safetensors.read(path)
            }
            try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path))
            #expect(throws: TensorFileError(path: path, "truncated: 3 bytes, no header length")) { try Safetensors.read(path) }
        }

        /// A header as written, padded to 8 bytes, then `dataBytes` zero bytes.
        static func file(header: String, dataBytes: Int, declaredLength: UInt64? = nil) -> Data {
            var h = Array(header.utf8)
            while h.count % 8 != 0 { h.append(0x20) }
            var d = Data()
            withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian) { d.append(contentsOf: $0) }
            return d + Data(h) + Data(count: dataBytes)
        }

        @Test func malformedHeadersAreRefusedNamingTheTensor() throws {
            func refusal(_ data: Data) -> String? {
                do { _ = try Safetensors.parse(data, path: "f"); return nil } catch { return "\(error)" }
            }
            #expect(refusal(Self.file(header: "{}", dataBytes: 0, declaredLength: UInt64.max))
                    == "f: header of 18446744073709551615 bytes is larger than the format's 100000000; not a safetensors file")
            #expect(refusal(Self.file(header: #"{"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,16]}}"#, dataBytes: 16))
                    == "f: tensor a: shape [1099511627776, 1099511627776] of F32 needs more than 2^63 bytes, offsets give 16")
            #expect(refusal(Self.file(header: #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#, dataBytes: 24))
                    == "f: tensor b: data_offsets [8, 24] overlap those of a [0, 16]")
            #expect(refusal(Self.file(header: #"{"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,0]}}"#, dataBytes: 0))
                    == "f: tensor a: shape [-4] is not a tensor shape (at most 8 sizes, none negative)")
            #expect(refusal(Self.file(header: "[1]", dataBytes: 0)) == "f: the header is not a JSON object")
            // A header one byte longer than the file is refused; one ending at the file's end is read.
            #expect(refusal(Self.file(header: "{}", dataBytes: 0, declaredLength: 9)) == "f: truncated: header of 9 bytes, file has 16")
            #expect(try Safetensors.parse(Self.file(header: "{}", dataBytes: 0), path: "f").tensors.isEmpty)
            // Empty tensors at one offset do not overlap anything.
            let ok = Self.file(header: #"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 4)
            #expect(try Safetensors.parse(ok, path: "f").tensors.map(\.0) == ["a", "b"])
        }

        /// BF16 and F16 tensors (GPU checkpoints) read into Float32 exactly: bf16 is the top
        /// half of a float's bits, f16 widens without rounding.
        @Test func halfPrecisionTensorsReadAsFloat32() throws {
            let values: [Float] = [1, -2.5, 0.15625, 65504, -0.0009765625, 3.140625]
            let bf16 = values.map { UInt16($0.bitPattern >> 16) }   // each value is exact in bf16
            let f16 = values.map { Float16($0).bitPattern }
            var file = Self.file(header: #"{"b":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},"h":{"dtype":"F16","shape":[6],"data_offsets":[12,24]}}"#,
                                 dataBytes: 0)
            for u in bf16 + f16 { withUnsafeBytes(of: u.littleEndian) { file.append(contentsOf: $0) } }
            let tensors = Dictionary(uniqueKeysWithValues: try Safetensors.parse(file, path: "f").tensors.map { ($0.0, $0.1) })
            let b = try #require(tensors["b"]), h = try #require(tensors["h"])
            #expect(b.dtype == .float32 && b.shape == [2, 3] && h.shape == [6])
            #expect(b.doubles == values.map { Double(Float(bitPattern: UInt32($0.bitPattern >> 16) << 16)) })
            #expect(h.doubles == values.map { Double(Float(Float16($0))) })
            #expect(b.doubles.prefix(3) == [1, -2.5, 0.15625])
            // A wrong byte count for a 2-byte type is refused like any other.
            let short = Self.file(header: #"{"b":{"dtype":"BF16","shape":[3],"data_offsets":[0,4]}}"#, dataBytes: 4)
            #expect(throws: TensorFileError.self) { try Safetensors.parse(short, path: "f") }
        }

        @Test func nonFiniteWeightsAreRefusedOnLoad() throws {
            let dir = temporaryDirectory("nan")
            let config = ModelConfig.fromDepth(1, vocabSize: 16, sequenceLen: 8)
            let model = try GPT(config: config, seed: 1)
            model.parameters.parameters[0].tensor.data(Float.self)[5] = .infinity
            try Checkpoint.save(model, step: 1, to: dir)
            #expect(throws: TensorFileError(path: Checkpoint.modelPath(dir, step: 1), tensor: model.parameters.parameters[0].name,
                                            "element 5 is not finite (NaN or Inf); the weights are unusable")) {
                try Checkpoint.load(from: dir)
            }
        }

        /// The first NaN or infinity, in either dtype; nil when every element is finite.
        @Test func firstNonFiniteFindsTheFirst() {
            let values: [Double] = [1, -0.0, 3e38, .nan, .infinity, 2]
            #expect(Safetensors.firstNonFinite(Tensor(shape: [6], scalars: values, dtype: .float64)) == 3)
            #expect(Safetensors.firstNonFinite(Tensor(shape: [2, 3], scalars: values, dtype: .float32)) == 3)
            #expect(Safetensors.firstNonFinite(Tensor(shape: [2], scalars: [-Double.infinity, .nan], dtype: .float32)) == 0)
            #expect(Safetensors.firstNonFinite(Tensor(shape: [3], scalars: [1, 2, Double.greatestFiniteMagnitude], dtype: .float64)) == nil)
            #expect(Safetensors.firstNonFinite(Tensor(shape: [0], scalars: [Double](), dtype: .float32)) == nil)
            // Copies between the dtypes keep the values (these are exact in both).
            let wide = Tensor(shape: [3], scalars: [1.5, -2.25, 1e-3], dtype: .float64)
            #expect(wide.copy(dtype: .float32).floats == [1.5, -2.25, Float(1e-3)])
            #expect(wide.copy(dtype: .float32).copy(dtype: .float64).doubles == [1.5, -2.25, Double(Float(1e-3))])
        }

        @Test func checkpointRoundTripAndSameSeedSameBytes() throws {
            let config = tinyConfig("TM")
            let dir1 = temporaryDirectory("ck1"), dir2 = temporaryDirectory("ck2")
            let model = try GPT(config: config, seed: 11)
            try Checkpoint.save(model, step: 0, to: dir1, extra: ["val_bpb": 1.5])
            try Checkpoint.save(try GPT(config: config, seed: 11), step: 0, to: dir2)
            let bytes1 = try Data(contentsOf: URL(fileURLWithPath: Checkpoint.modelPath(dir1, step: 0)))
            let bytes2 = try Data(contentsOf: URL(fileURLWithPath: Checkpoint.modelPath(dir2, step: 0)))
            #expect(bytes1 == bytes2)
            let (loaded, step) = try Checkpoint.load(from: dir1)
            #expect(loaded.config == config && step == 0)
            struct Extra: Decodable { let val_bpb: Double }
            #expect(try Checkpoint.meta(Extra.self, in: dir1, step: 0).val_bpb == 1.5)
            #expect(try Checkpoint.meta(Checkpoint.Meta.self, in: dir1, step: 0).modelConfig == config)
            for (p, q) in zip(model.parameters.parameters, loaded.parameters.parameters) {
                #expect(p.name == q.name && p.tensor.floats == q.tensor.floats)
            }
            #expect(Checkpoint.steps(in: dir1) == [0])
        }

        /// A model held in Float64 (as gradient checks hold one) is saved in Float32, each value
        /// rounded once, as SPEC §3.4's checkpoint has it.
        @Test func aFloat64ModelIsSavedInFloat32() throws {
            let config = tinyConfig("TM")
            let model = try GPT(config: config, parameters: ParameterSet.initialized(config, seed: 11, dtype: .float64))
            let dir = temporaryDirectory("f64")
            try Checkpoint.save(model, step: 0, to: dir)
            let path = Checkpoint.modelPath(dir, step: 0)
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            let length = Int(bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            let header = String(decoding: bytes[8..<(8 + length)], as: UTF8.self)
            #expect(header.contains("\"dtype\":\"F32\"") && !header.contains("F64"), "\(header.prefix(200))")
            let (read, _) = try Safetensors.read(path)
            #expect(read.count == model.parameters.parameters.count)
            let saved = Dictionary(read, uniquingKeysWith: { a, _ in a })
            for p in model.parameters.parameters {
                #expect(p.tensor.dtype == .float64 && saved[p.name]?.dtype == .float32, "\(p.name)")
                #expect(saved[p.name]?.floats == p.tensor.doubles.map(Float.init), "\(p.name)")
            }
        }

        /// Without a step, the latest by number is loaded (9 after 10 would sort first as text);
        /// with one, that step. Steps of six digits and more (a long run of small batches) are
        /// read whole.
        @Test func withoutAStepTheLatestLoads() throws {
            let dir = temporaryDirectory("latest")
            let config = ModelConfig.fromDepth(1, vocabSize: 16, sequenceLen: 8)
            for (step, seed) in [(10, 1), (9, 2), (120, 3), (123_456, 4), (1_234_567, 5)] as [(Int, UInt64)] {
                try Checkpoint.save(try GPT(config: config, seed: seed), step: step, to: dir)
            }
            #expect(Checkpoint.steps(in: dir) == [9, 10, 120, 123_456, 1_234_567])
            let (latest, step) = try Checkpoint.load(from: dir)
            #expect(step == 1_234_567)
            #expect(latest.parameters.parameters[0].tensor.floats == (try GPT(config: config, seed: 5)).parameters.parameters[0].tensor.floats)
            #expect(try Checkpoint.load(from: dir, step: 9).step == 9)
            #expect(try Checkpoint.load(from: dir, step: 123_456).step == 123_456)
        }

        @Test func checkpointErrorsNameTheTensor() throws {
            let dir = temporaryDirectory("bad")
            let model = try GPT(config: tinyConfig("T"), seed: 1)
            try Checkpoint.save(model, step: 5, to: dir)
            // Overwrite the weights with a file whose c_q has the wrong shape.
            let path = Checkpoint.modelPath(dir, step: 5)
            var tensors = try Safetensors.read(path).tensors
            let i = tensors.firstIndex { $0.0 == "transformer.h.0.attn.c_q.weight" }!
            tensors[i].1 = Tensor(zeros: [3, 3])
            try Safetensors.write(tensors, to: path)
            #expect(throws: TensorFileError(path: path, tensor: "transformer.h.0.attn.c_q.weight",
                                            "shape [3, 3], the config needs [16, 16]")) {
                try Checkpoint.load(from: dir)
            }
        }

        /// Each way a checkpoint directory can fall short names the file and what is wrong: no
        /// checkpoint, a step that is not there, a meta file without a key or with one of the
        /// wrong type or not JSON, a model_config that decodes but cannot be built, a tensor
        /// missing or one the model does not have.
        @Test func checkpointDirectoriesThatFallShortNameTheFileAndWhat() throws {
            let dir = temporaryDirectory("short")
            #expect(throws: TensorFileError(path: dir, "no checkpoint (no meta_*.json) in this directory")) { try Checkpoint.load(from: dir) }
            let config = tinyConfig("TM")
            try Checkpoint.save(try GPT(config: config, seed: 3), step: 4, to: dir, extra: ["val_bpb": 1.25])
            let metaPath = Checkpoint.metaPath(dir, step: 4), modelPath = Checkpoint.modelPath(dir, step: 4)
            #expect(throws: TensorFileError(path: Checkpoint.metaPath(dir, step: 7), "missing: no checkpoint for step 7")) {
                try Checkpoint.load(from: dir, step: 7)
            }
            struct Extra: Decodable { let val_bpb: Double }
            struct Other: Decodable { let val_loss: Double }
            #expect(throws: TensorFileError(path: Checkpoint.metaPath(dir, step: 7), "missing: no checkpoint for step 7")) {
                try Checkpoint.meta(Extra.self, in: dir, step: 7)
            }
            #expect(throws: TensorFileError(path: metaPath, "not the meta file this needs: val_loss is missing")) {
                try Checkpoint.meta(Other.self, in: dir, step: 4)
            }
            let good = try Data(contentsOf: URL(fileURLWithPath: metaPath))
            var meta = try #require(try JSONSerialization.jsonObject(with: good) as? [String: Any])
            meta["val_bpb"] = "low"
            try JSONSerialization.data(withJSONObject: meta).write(to: URL(fileURLWithPath: metaPath))
            #expect(throws: TensorFileError(path: metaPath, "not the meta file this needs: val_bpb is not of type Double")) {
                try Checkpoint.meta(Extra.self, in: dir, step: 4)
            }
            meta["val_bpb"] = NSNull()
            try JSONSerialization.data(withJSONObject: meta).write(to: URL(fileURLWithPath: metaPath))
            #expect(throws: TensorFileError(path: metaPath, "not the meta file this needs: val_bpb is null, expected Double")) {
                try Checkpoint.meta(Extra.self, in: dir, step: 4)
            }
            try Data("{\"step\": 4,".utf8).write(to: URL(fileURLWithPath: metaPath))
            #expect(throws: TensorFileError(path: metaPath, "not the meta file this needs: not valid JSON")) {
                try Checkpoint.meta(Extra.self, in: dir, step: 4)
            }
            #expect(throws: TensorFileError(path: metaPath, "not a checkpoint meta file (step and model_config): not valid JSON")) {
                try Checkpoint.load(from: dir)
            }
            // Three heads do not divide a width of 16.
            var mc = try #require(meta["model_config"] as? [String: Any])
            mc["n_head"] = 3
            mc["n_kv_head"] = 3
            meta["model_config"] = mc
            meta["val_bpb"] = 1.25
            try JSONSerialization.data(withJSONObject: meta).write(to: URL(fileURLWithPath: metaPath))
            let invalid = try #require(throws: TensorFileError.self) { try Checkpoint.load(from: dir) }
            #expect(invalid.path == metaPath && invalid.message.hasPrefix("model_config: ") && invalid.message.contains("n_head"), "\(invalid)")
            try good.write(to: URL(fileURLWithPath: metaPath))
            #expect(try Checkpoint.load(from: dir).step == 4)

            let tensors = try Safetensors.read(modelPath).tensors
            try Safetensors.write(tensors.filter { $0.0 != "transformer.h.1.mixer.D" }, to: modelPath)
            #expect(throws: TensorFileError(path: modelPath, tensor: "transformer.h.1.mixer.D", "missing (the config needs shape [32])")) {
                try Checkpoint.load(from: dir)
            }
            try Safetensors.write(tensors + [("transformer.h.1.mixer.E", Tensor(zeros: [32]))], to: modelPath)
            #expect(throws: TensorFileError(path: modelPath, tensor: "transformer.h.1.mixer.E", "not a parameter of the model in \(metaPath)")) {
                try Checkpoint.load(from: dir)
            }
        }

        @Test func metaWithoutPatternLoadsAsAllTransformer() throws {
            let dir = temporaryDirectory("old")
            let config = tinyConfig("TT")
            try Checkpoint.save(try GPT(config: config, seed: 2), step: 1, to: dir)
            let metaPath = Checkpoint.metaPath(dir, step: 1)
            var meta = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: metaPath))) as! [String: Any]
            var mc = meta["model_config"] as! [String: Any]
            for key in ["block_pattern", "mamba_d_state", "mamba_d_conv", "mamba_expand", "mamba_use_mlp"] { mc[key] = nil }
            meta["model_config"] = mc
            try JSONSerialization.data(withJSONObject: meta).write(to: URL(fileURLWithPath: metaPath))
            #expect(try Checkpoint.load(from: dir).model.config.blockPattern == [.transformer, .transformer])
            // Without a pattern, n_layer sizes one; out of range it is an error, not a trap
            // (found by fuzzing the meta reader).
            // Both edges: 1 and 4096 layers are read, 0 and 4097 are not.
            for n in [-40, 0, 1, 4096, 4097] {
                mc["n_layer"] = n
                meta["model_config"] = mc
                let data = try JSONSerialization.data(withJSONObject: meta)
                if (1...4096).contains(n) {
                    #expect(try Checkpoint.modelConfig(fromMeta: data, path: "m").blockPattern.count == n)
                } else {
                    #expect(throws: TensorFileError(path: "m", "model_config: n_layer must be in 1...4096, got \(n)")) {
                        try Checkpoint.modelConfig(fromMeta: data, path: "m")
                    }
                }
            }
        }

        /// A meta file's sizes are integers: `true` is not read as 1.
        @Test func metaBooleansAreNotNumbers() throws {
            let dir = temporaryDirectory("meta-bool")
            try Checkpoint.save(try GPT(config: tinyConfig("T"), seed: 1), step: 1, to: dir)
            let good = try Data(contentsOf: URL(fileURLWithPath: Checkpoint.metaPath(dir, step: 1)))
            var meta = try #require(try JSONSerialization.jsonObject(with: good) as? [String: Any])
            var mc = try #require(meta["model_config"] as? [String: Any])
            mc["n_layer"] = true
            meta["model_config"] = mc
            let bad = try JSONSerialization.data(withJSONObject: meta)
            let error = try #require(throws: TensorFileError.self) { try Checkpoint.modelConfig(fromMeta: bad, path: "m") }
            #expect(error.message.contains("n_layer"), "\(error)")
        }

        /// A checkpoint's files are read from its directory: one linked from elsewhere is
        /// refused, naming the file, and one linked within the directory is read.
        @Test func filesLinkedFromOutsideTheDirectoryAreRefused() throws {
            let fm = FileManager.default
            let dir = temporaryDirectory("link"), outside = temporaryDirectory("link-out")
            let model = try GPT(config: tinyConfig("T"), seed: 1)
            try Checkpoint.save(model, step: 1, to: dir)
            try fm.createDirectory(atPath: outside, withIntermediateDirectories: true)
            let file = Checkpoint.modelPath(dir, step: 1)
            try fm.moveItem(atPath: file, toPath: dir + "/weights")
            try fm.createSymbolicLink(atPath: file, withDestinationPath: "weights")
            #expect(try Checkpoint.load(from: dir).step == 1)
            try fm.moveItem(atPath: dir + "/weights", toPath: outside + "/weights")
            try fm.removeItem(atPath: file)
            try fm.createSymbolicLink(atPath: file, withDestinationPath: "../" + (outside as NSString).lastPathComponent + "/weights")
            let error = try #require(throws: TensorFileError.self) { try Checkpoint.load(from: dir) }
            #expect(error.path == file && error.message.contains("outside its folder"), "\(error)")
            // The directory itself may be a link (a run kept on another disk).
            try fm.moveItem(atPath: outside + "/weights", toPath: dir + "/weights")
            try fm.removeItem(atPath: file)
            try fm.createSymbolicLink(atPath: file, withDestinationPath: "weights")
            let alias = temporaryDirectory("link-alias") + "/run"
            try fm.createSymbolicLink(atPath: alias, withDestinationPath: dir)
            #expect(try Checkpoint.load(from: alias).step == 1)
        }
    }
}

/// Bytes counted by a reader thread, read once it has finished.
private final class Counted: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private(set) var total = 0
    func add(_ n: Int) { total += n }
    func finish() { done.signal() }
    func waitUntilFinished() { done.wait() }
}
