// Agreement with an independent PyTorch implementation (tools/make_fixtures.py, float64):
// logits, loss and every parameter's gradient of tiny Transformer, grouped-KV Transformer,
// Mamba, Mamba-with-MLP and hybrid models. Tolerances are per tensor and stated below;
// failures print the largest difference and where it is.
import Foundation
import Testing
import Tensor
import Blocks

let fixturesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

extension BlocksTests {
    @Suite struct PyTorchAgreementTests {
        /// max |a - e| and its index.
        func largestDifference(_ a: [Double], _ e: [Double]) -> (Double, Int) {
            var worst = (0.0, -1)
            for i in 0..<min(a.count, e.count) where abs(a[i] - e[i]) > worst.0 || abs(a[i] - e[i]).isNaN {
                worst = (abs(a[i] - e[i]).isNaN ? .infinity : abs(a[i] - e[i]), i)
            }
            return worst
        }

        @Test(arguments: ["transformer", "transformer_gqa", "mamba", "mamba_mlp", "hybrid"])
        func matchesPyTorch(_ name: String) throws {
            let (tensors, metadata) = try Safetensors.read("\(fixturesDirectory)/\(name).safetensors")
            let byName = Dictionary(tensors, uniquingKeysWith: { a, _ in a })
            let config = try JSONDecoder().decode(ModelConfig.self, from: Data(try #require(metadata["model_config"]).utf8))
            let params = config.parameterSpecs.map { spec -> Parameter in
                let t = byName["param.\(spec.name)"]!
                t.requiresGrad = true
                return Parameter(name: spec.name, group: spec.group, tensor: t)
            }
            let model = try GPT(config: config, parameters: ParameterSet(params))
            let ids = try #require(byName["idx"]), tg = try #require(byName["targets"])
            let idx = IndexTensor(shape: ids.shape, values: ids.doubles.map { Int32($0) })
            let targets = IndexTensor(shape: tg.shape, values: tg.doubles.map { Int32($0) })

            // Logits: Float32 against float64, values within ±15: 2e-4 absolute.
            let logits = GradMode.withoutGradients { model.logits(idx) }
            let (dl, il) = largestDifference(logits.doubles, byName["logits"]!.doubles)
            #expect(dl <= 2e-4, "\(name): logits differ by \(dl) at \(il)")

            // Loss: 1e-5 absolute.
            let loss = model.loss(idx, targets: targets)
            let expectedLoss = byName["loss"]!.item
            let got = loss.item
            #expect(abs(got - expectedLoss) <= 1e-5, "\(name): loss \(got) vs PyTorch \(expectedLoss)")

            // Gradients: per tensor, 1e-3 of the tensor's largest gradient plus 1e-7.
            loss.backward()
            for p in params {
                let expected = byName["grad.\(p.name)"]!.doubles
                let got = p.tensor.grad?.doubles ?? [Double](repeating: 0, count: expected.count)
                let scale = expected.map(abs).max() ?? 0
                let (d, i) = largestDifference(got, expected)
                let gotAt: Double = i >= 0 ? got[i] : 0, expectedAt: Double = i >= 0 ? expected[i] : 0
                let label = "\(name): d\(p.name) differs by \(d) at \(i) (got \(gotAt), PyTorch \(expectedAt), largest |g| \(scale))"
                #expect(d <= 1e-3 * scale + 1e-7, "\(label)")
            }
        }

        /// bf16 products against PyTorch's autocast (tools/make_autocast_fixture.py): a depth-4
        /// hybrid's logits, on every bf16 kernel this CPU runs. Autocast rounds the products'
        /// outputs to bf16 too, where ours stay fp32, so ours must be at least as close to the
        /// float64 logits as autocast's, and the two within twice autocast's own distance.
        @Test(arguments: BF16Kernel.allCases.filter(\.available))
        func bf16MatchesAutocast(_ kernel: BF16Kernel) throws {
            let (tensors, metadata) = try Safetensors.read("\(fixturesDirectory)/autocast_d4.safetensors")
            let byName = Dictionary(tensors, uniquingKeysWith: { a, _ in a })
            let config = try JSONDecoder().decode(ModelConfig.self, from: Data(try #require(metadata["model_config"]).utf8))
            let params = try config.parameterSpecs.map { spec -> Parameter in
                Parameter(name: spec.name, group: spec.group, tensor: try #require(byName["param.\(spec.name)"]))
            }
            let model = try GPT(config: config, parameters: ParameterSet(params))
            let ids = try #require(byName["idx"])
            let idx = IndexTensor(shape: ids.shape, values: ids.doubles.map { Int32($0) })
            let float64 = try #require(byName["logits_float64"]).doubles, autocast = try #require(byName["logits_autocast"]).doubles
            let ours = GradMode.withoutGradients { Precision.with(.bfloat16, kernel: kernel) { model.logits(idx) } }.doubles
            let fp32 = GradMode.withoutGradients { model.logits(idx) }.doubles
            let (autocastError, _) = largestDifference(autocast, float64)
            let (oursError, worst) = largestDifference(ours, float64)
            let (apart, apartAt) = largestDifference(ours, autocast)
            let (fp32Error, _) = largestDifference(fp32, float64)
            #expect(fp32Error <= 2e-4, "fp32 logits differ from float64 by \(fp32Error)")
            #expect(oursError > 10 * fp32Error, "\(kernel): bf16 logits as close to float64 as fp32's (\(oursError)): not multiplied in bf16?")
            #expect(oursError <= autocastError,
                    "\(kernel): bf16 logits \(oursError) from float64 at \(worst), autocast's \(autocastError)")
            #expect(apart <= 2 * autocastError, "\(kernel): bf16 logits \(apart) from autocast's at \(apartAt) (autocast's own error \(autocastError))")
        }
    }
}
