// Checkpoints (SPEC §3.4): a directory holding, for step S (6 digits),
// model_S.safetensors (the parameters of SPEC §1.4), meta_S.json (step, val_bpb,
// model_config, user_config, and whatever resuming needs) and, from training,
// optim_S.safetensors. Every file is written atomically.
import Foundation
import Tensor

public enum Checkpoint {
    public static func modelPath(_ dir: String, step: Int) -> String { "\(dir)/model_\(stepString(step)).safetensors" }
    public static func metaPath(_ dir: String, step: Int) -> String { "\(dir)/meta_\(stepString(step)).json" }
    public static func optimPath(_ dir: String, step: Int) -> String { "\(dir)/optim_\(stepString(step)).safetensors" }
    static func stepString(_ step: Int) -> String { String(format: "%06d", step) }

    /// Writes the model's parameters (as Float32) and meta_S.json: `step`, `model_config`,
    /// and the keys of `extra` (val_bpb, user_config, the resume state: what the caller
    /// adds). The meta file is written last, so a checkpoint is complete exactly when its
    /// meta exists.
    public static func save(_ model: GPT, step: Int, to dir: String, extra: some Encodable) throws {
        model.settleWeights()
        try AtomicFile.makeDirectories(dir)
        let tensors = model.parameters.parameters.map { p in
            (p.name, p.tensor.dtype == .float32 ? p.tensor : p.tensor.copy(dtype: .float32))
        }
        try Safetensors.write(tensors, metadata: ["format": "pt"], to: modelPath(dir, step: step))
        try AtomicFile.write(try metaJSON(step: step, config: model.config, extra: extra), to: metaPath(dir, step: step))
    }

    /// A checkpoint with no more than `step` and `model_config` in its meta file.
    public static func save(_ model: GPT, step: Int, to dir: String) throws {
        try save(model, step: step, to: dir, extra: [String: Int]())
    }

    /// The meta object: extra's keys, then step and model_config (which win), pretty-printed
    /// with sorted keys.
    static func metaJSON(step: Int, config: ModelConfig, extra: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        func object(_ value: some Encodable) throws -> [String: Any] {
            (try JSONSerialization.jsonObject(with: encoder.encode(value)) as? [String: Any]) ?? [:]
        }
        var meta = try object(extra)
        meta["step"] = step
        meta["model_config"] = try object(config)
        return try JSONSerialization.data(withJSONObject: meta, options: [.prettyPrinted, .sortedKeys])
    }

    /// Decodes the meta file of `step` in `dir` as `Meta` (the keys it does not name are
    /// ignored); an error names the file.
    public static func meta<Meta: Decodable>(_ type: Meta.Type, in dir: String, step: Int) throws -> Meta {
        let path = metaPath(dir, step: step)
        guard let data = try FolderFile.contents(path) else {
            throw TensorFileError(path: path, "missing: no checkpoint for step \(step)")
        }
        do {
            return try JSONDecoder().decode(Meta.self, from: data)
        } catch {
            throw TensorFileError(path: path, "not the meta file this needs: \(describe(error))")
        }
    }

    /// A JSON decoding error in a few words: where in the file, and what was wrong.
    static func describe(_ error: Error) -> String {
        func at(_ path: [CodingKey]) -> String { path.isEmpty ? "the top level" : path.map(\.stringValue).joined(separator: ".") }
        switch error {
        case DecodingError.typeMismatch(let type, let c): return "\(at(c.codingPath)) is not of type \(type)"
        case DecodingError.valueNotFound(let type, let c): return "\(at(c.codingPath)) is null, expected \(type)"
        case DecodingError.keyNotFound(let key, let c): return "\(at(c.codingPath + [key])) is missing"
        case DecodingError.dataCorrupted(let c): return c.codingPath.isEmpty ? "not valid JSON" : "\(at(c.codingPath)): \(c.debugDescription)"
        default: return "\(error)"
        }
    }

    /// The steps that have a meta file in `dir`, ascending.
    public static func steps(in dir: String) -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.compactMap { name -> Int? in
            guard name.hasPrefix("meta_"), name.hasSuffix(".json") else { return nil }
            return Int(name.dropFirst(5).dropLast(5))
        }.sorted()
    }

    /// Deletes every checkpoint file (model_, meta_, optim_) in `dir`, metas first so that no
    /// half-deleted checkpoint looks complete.
    public static func remove(in dir: String) throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        let ours = names.filter { n in ["model_", "optim_", "meta_"].contains { n.hasPrefix($0) } }
        for name in ours.filter({ $0.hasPrefix("meta_") }) + ours.filter({ !$0.hasPrefix("meta_") }) {
            try FileManager.default.removeItem(atPath: "\(dir)/\(name)")
        }
    }

    /// Deletes the checkpoints of `steps` in `dir`, each one's meta file first.
    public static func remove(steps: [Int], in dir: String) throws {
        for step in steps {
            for path in [metaPath(dir, step: step), modelPath(dir, step: step), optimPath(dir, step: step)]
            where FileManager.default.fileExists(atPath: path) {
                do { try FileManager.default.removeItem(atPath: path) } catch {
                    throw TensorFileError(path: path, "cannot remove the earlier checkpoint: \(error.localizedDescription)")
                }
            }
        }
    }

    /// The meta keys every checkpoint has.
    public struct Meta: Decodable {
        public let step: Int
        public let modelConfig: ModelConfig
        enum CodingKeys: String, CodingKey { case step, modelConfig = "model_config" }
    }

    /// The model_config of a meta file's bytes, validated (`path` names it in errors).
    public static func modelConfig(fromMeta data: Data, path: String) throws -> ModelConfig {
        let config: ModelConfig
        do {
            config = try JSONDecoder().decode(Meta.self, from: data).modelConfig
        } catch let e as ModelConfigError {
            throw TensorFileError(path: path, "model_config: \(e)")
        } catch {
            throw TensorFileError(path: path, "not a checkpoint meta file (step and model_config): \(describe(error))")
        }
        do {
            try config.validate()
        } catch {
            throw TensorFileError(path: path, "model_config: \(error)")
        }
        return config
    }

    /// Loads the model of step `step` (the latest when nil), and which step that was.
    public static func load(from dir: String, step: Int? = nil) throws -> (model: GPT, step: Int) {
        let found = try locate(in: dir, step: step)
        let file = modelPath(dir, step: found.step)
        try FolderFile.requireInside(file)
        let (tensors, _) = try Safetensors.read(file)
        return (try model(config: found.config, tensors: tensors, file: file, metaFile: found.metaFile), found.step)
    }

    /// The checkpoint of `step` in `dir` (the latest when nil): its step, meta file (path and
    /// bytes) and validated model_config. `kind` names what is missing in the error.
    public static func locate(in dir: String, step: Int?, kind: String = "checkpoint")
        throws -> (step: Int, metaFile: String, meta: Data, config: ModelConfig) {
        guard let s = step ?? steps(in: dir).last else {
            throw TensorFileError(path: dir, "no \(kind) (no meta_*.json) in this directory")
        }
        let metaFile = metaPath(dir, step: s)
        guard let meta = try FolderFile.contents(metaFile) else {
            throw TensorFileError(path: metaFile, "missing: no checkpoint for step \(s)")
        }
        return (s, metaFile, meta, try modelConfig(fromMeta: meta, path: metaFile))
    }

    /// The model of `config` from named tensors (read from `file`, configured by `metaFile`:
    /// both named in errors): every parameter present with its shape and finite, none extra.
    public static func model(config: ModelConfig, tensors: [(String, Tensor)], file: String, metaFile: String) throws -> GPT {
        let byName = Dictionary(tensors, uniquingKeysWith: { a, _ in a })
        let specs = config.parameterSpecs
        let names = Set(specs.map(\.name))
        var params: [Parameter] = []
        for spec in specs {
            guard let t = byName[spec.name] else {
                throw TensorFileError(path: file, tensor: spec.name, "missing (the config needs shape \(spec.shape))")
            }
            guard t.shape == spec.shape else {
                throw TensorFileError(path: file, tensor: spec.name, "shape \(t.shape), the config needs \(spec.shape)")
            }
            if let i = Safetensors.firstNonFinite(t) {
                throw TensorFileError(path: file, tensor: spec.name, "element \(i) is not finite (NaN or Inf); the weights are unusable")
            }
            let p = t.dtype == .float32 ? t : t.copy(dtype: .float32)
            p.requiresGrad = true
            p.name = spec.name
            params.append(Parameter(name: spec.name, group: spec.group, tensor: p))
        }
        if let extra = tensors.first(where: { name, _ in !names.contains(name) }) {
            throw TensorFileError(path: file, tensor: extra.0, "not a parameter of the model in \(metaFile)")
        }
        return try GPT(config: config, parameters: ParameterSet(params))
    }
}
