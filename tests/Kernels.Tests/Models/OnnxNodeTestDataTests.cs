using Microsoft.ML.OnnxRuntime;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Tests.Support;
using Quantize.Tests;

namespace Quantize.Kernels.Tests.Models;

/// <summary>
/// Our tensor decoding checked by ONNX Runtime: for every backend test case with tensor-typed
/// inputs and outputs, ORT runs the model on the inputs as we decoded them, and its outputs must
/// equal our decoding of the expected output files. A wrong decoder breaks one side or the other.
/// </summary>
public class OnnxNodeTestDataTests
{
    public static TheoryData<string> Cases() => NodeTestCases.Data();

    [Theory]
    [MemberData(nameof(Cases))]
    public void Onnx_runtime_on_our_decoded_inputs_gives_our_decoded_outputs(string name)
    {
        NodeTestCases.Folder(name); // fails or skips when the data is missing
        var result = NodeTestOracle.Results.Value[name];
        if (result.Outcome is Outcome.Mismatch or Outcome.DecoderFailed)
            Assert.Fail($"{name}: {result.Outcome}: {result.Detail}");
        if (result.Outcome is not (Outcome.Verified or Outcome.VerifiedByOnnxReference))
            Assert.Skip($"{result.Outcome}: {result.Detail}");
    }

    [Fact]
    public void Oracles_verified_well_over_a_thousand_cases_and_every_element_type_in_the_data()
    {
        SharedData.Require("onnx-node-tests");
        var results = NodeTestOracle.Results.Value.Values.OrderBy(r => r.Name, StringComparer.Ordinal).ToList();
        var byOrt = results.Where(r => r.Outcome == Outcome.Verified).ToList();
        var byReference = results.Where(r => r.Outcome == Outcome.VerifiedByOnnxReference).ToList();
        var seen = results.SelectMany(r => r.ElementTypes).ToHashSet();
        var ortTypes = byOrt.SelectMany(r => r.ElementTypes).ToHashSet();
        var referenceTypes = byReference.SelectMany(r => r.ElementTypes).ToHashSet();

        var output = TestContext.Current.TestOutputHelper;
        output?.WriteLine($"{results.Count} cases: " + string.Join(", ", results.GroupBy(r => r.Outcome).OrderBy(g => g.Key).Select(g => $"{g.Key} {g.Count()}")));
        foreach (var type in seen.Order())
        {
            output?.WriteLine($"  {type.DisplayName(),-16} in {results.Count(r => r.ElementTypes.Contains(type)),4} cases, verified by ORT in {byOrt.Count(r => r.ElementTypes.Contains(type)),4}, by ONNX's reference in {byReference.Count(r => r.ElementTypes.Contains(type)),3}");
        }
        foreach (var r in results.Where(r => r.Outcome is not (Outcome.Verified or Outcome.VerifiedByOnnxReference or Outcome.NotTensors)))
            output?.WriteLine($"  {r.Outcome} {r.Name}: {r.Detail}");

        Assert.True(byOrt.Count >= 1500, $"only {byOrt.Count} cases verified by ORT");
        foreach (var type in seen)
            Assert.True(ortTypes.Contains(type) || referenceTypes.Contains(type), $"no case with {type.DisplayName()} data was verified");
        // ORT 1.31 (this build) registers none of these types; naming them keeps the reference
        // fallback honest and notices when ORT starts running them.
        Assert.Equal(OrtCannotRunTypes.Order(), seen.Except(ortTypes).Order());
        Assert.All(MustBeVerifiedByOrt, type => Assert.Contains(type, ortTypes));
    }

    private static readonly TensorElementType[] MustBeVerifiedByOrt =
    [
        TensorElementType.Float32, TensorElementType.Float64, TensorElementType.Float16, TensorElementType.BFloat16,
        TensorElementType.Int8, TensorElementType.Int16, TensorElementType.Int32, TensorElementType.Int64,
        TensorElementType.UInt8, TensorElementType.UInt16, TensorElementType.UInt32, TensorElementType.UInt64,
        TensorElementType.Bool, TensorElementType.String,
    ];

    private static readonly TensorElementType[] OrtCannotRunTypes =
    [
        TensorElementType.Int4, TensorElementType.UInt4, TensorElementType.Int2, TensorElementType.UInt2,
        TensorElementType.Float8E4M3FN, TensorElementType.Float8E4M3FNUZ, TensorElementType.Float8E5M2,
        TensorElementType.Float8E5M2FNUZ, TensorElementType.Float8E8M0, TensorElementType.Float4E2M1,
    ];

    /// <summary>
    /// Cases where ORT's result differs from ONNX's reference for reasons of its own, not of the data:
    /// decoding is not in question (the other elements, types and shapes match).
    /// </summary>
    private static readonly (string Prefix, string Reason)[] KnownOrtDifferences =
    [
        ("onnx-node-tests/test_training_dropout", "Dropout in training mode draws a random mask"),
        ("onnx-node-tests/test_dft", "ORT's float32 DFT leaves ~1e-5 of rounding where the float64 reference has exact zeros (atol 1e-7)"),
        ("onnx-node-tests/test_stft", "ORT's float32 STFT leaves ~1e-6 of rounding where the float64 reference has exact zeros (atol 1e-7)"),
        ("onnx-node-tests/test_resize_downsample_scales_linear_align_corners", "ORT samples align_corners downscaling differently from the reference"),
        ("onnx-node-tests/test_resize_downsample_scales_cubic_align_corners", "ORT samples align_corners downscaling differently from the reference"),
        ("onnx-node-tests/test_maxunpool_export_with_output_shape", "ORT places unpooled values differently when output_shape is given"),
        ("onnx-node-tests/test_attention_4d_with_past_and_present_qk_matmul_bias_", "ORT masks with float.MinValue where the reference uses -infinity"),
    ];

    internal enum Outcome
    {
        Verified,
        VerifiedByOnnxReference,
        NotTensors,
        NotDeterministic,
        OrtCannotLoad,
        OrtCannotRun,
        OrtDiffers,
        Mismatch,
        DecoderFailed,
    }

    internal sealed record CaseResult(string Name, Outcome Outcome, string Detail, IReadOnlySet<TensorElementType> ElementTypes);

    /// <summary>Runs every case once, shared by the per-case rows and the summary.</summary>
    private static class NodeTestOracle
    {
        public static readonly Lazy<IReadOnlyDictionary<string, CaseResult>> Results = new(RunAll);

        /// <summary>Operators whose outputs are random draws; the expected files cannot be reproduced.</summary>
        private static readonly HashSet<string> RandomOps = ["Bernoulli", "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial"];

        private static IReadOnlyDictionary<string, CaseResult> RunAll()
        {
            var results = new Dictionary<string, CaseResult>(StringComparer.Ordinal);
            foreach (string name in NodeTestCases.All().Where(n => n != NodeTestCases.MissingData))
            {
                try
                {
                    results[name] = Run(name);
                }
                catch (Exception e) when (e is not OnnxRuntimeException)
                {
                    results[name] = new CaseResult(name, Outcome.DecoderFailed, e.ToString(), new HashSet<TensorElementType>());
                }
            }
            return results;
        }

        private static CaseResult Run(string name)
        {
            string folder = Path.Combine(SharedData.Root!, name);
            var types = new HashSet<TensorElementType>();
            var model = OnnxModel.Load(Path.Combine(folder, "model.onnx"));
            var initializers = model.Graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
            var inputs = model.Graph.Input.Where(i => !initializers.Contains(i.Name)).ToList();
            var outputs = model.Graph.Output.ToList();
            if (inputs.Concat(outputs).Any(v => v.Type?.ValueCase != TypeProto.ValueOneofCase.TensorType))
                return new CaseResult(name, Outcome.NotTensors, "a graph input or output is a sequence, optional or map", types);

            var fed = new List<(string, TensorData)>();
            var expected = new List<TensorData>();
            string data = Path.Combine(folder, "test_data_set_0");
            try
            {
                for (int i = 0; i < inputs.Count; i++)
                    fed.Add((inputs[i].Name, Decode(model, Path.Combine(data, $"input_{i}.pb"), types)));
                for (int i = 0; i < outputs.Count; i++)
                    expected.Add(Decode(model, Path.Combine(data, $"output_{i}.pb"), types));
            }
            catch (Exception e)
            {
                return new CaseResult(name, Outcome.DecoderFailed, e.ToString(), types);
            }

            if (model.Graph.Node.Any(n => RandomOps.Contains(n.OpType)))
                return new CaseResult(name, Outcome.NotDeterministic, "the model draws random numbers", types);

            InferenceSession session;
            try
            {
                session = OrtOracle.Session(File.ReadAllBytes(Path.Combine(folder, "model.onnx")));
            }
            catch (OnnxRuntimeException e)
            {
                return ByReference(name, model, fed, expected, types) ?? new CaseResult(name, Outcome.OrtCannotLoad, FirstLine(e.Message), types);
            }

            TensorData[] actual;
            using (session)
            {
                try
                {
                    actual = OrtOracle.Run(session, fed, outputs.Select(o => o.Name).ToList());
                }
                catch (OnnxRuntimeException e)
                {
                    return ByReference(name, model, fed, expected, types) ?? new CaseResult(name, Outcome.OrtCannotRun, FirstLine(e.Message), types);
                }
            }

            for (int i = 0; i < expected.Count; i++)
            {
                if (TensorComparison.Difference(expected[i], actual[i]) is { } difference)
                {
                    string detail = $"output {i} ('{outputs[i].Name}'): {difference}";
                    foreach (var (prefix, reason) in KnownOrtDifferences)
                    {
                        if (name.StartsWith(prefix, StringComparison.Ordinal))
                            return new CaseResult(name, Outcome.OrtDiffers, $"{reason}; {detail}", types);
                    }
                    return new CaseResult(name, Outcome.Mismatch, detail, types);
                }
            }
            return new CaseResult(name, Outcome.Verified, "", types);
        }

        /// <summary>
        /// A Cast, CastLike or per-tensor DequantizeLinear of a narrow type, which ORT cannot run: our
        /// decoding of the inputs, widened by the type's definition, must give our decoding of ONNX's
        /// expected output.
        /// </summary>
        private static CaseResult? ByReference(string name, OnnxModel model, List<(string, TensorData)> fed, List<TensorData> expected,
            HashSet<TensorElementType> types)
        {
            if (model.Graph.Node.Count != 1 || expected.Count != 1 || model.Graph.Initializer.Count != 0) return null;
            var x = fed[0].Item2;
            if (!NarrowTypeReference.IsNarrow(x.ElementType) || !NarrowTypeReference.IsWideTarget(expected[0].ElementType)) return null;
            string? difference;
            switch (model.Graph.Node[0].OpType)
            {
                case "Cast" or "CastLike":
                    difference = NarrowTypeReference.CastDifference(x, expected[0]);
                    break;
                case "DequantizeLinear" when fed.Count >= 2 && fed.Skip(1).All(f => f.Item2.ElementCount == 1):
                    difference = NarrowTypeReference.DequantizeDifference(x, fed[1].Item2, fed.Count > 2 ? fed[2].Item2 : null, expected[0]);
                    break;
                default:
                    return null;
            }
            return difference is null
                ? new CaseResult(name, Outcome.VerifiedByOnnxReference, "", types)
                : new CaseResult(name, Outcome.Mismatch, $"against ONNX's reference {model.Graph.Node[0].OpType}: {difference}", types);
        }

        private static TensorData Decode(OnnxModel model, string path, HashSet<TensorElementType> types)
        {
            var tensor = TensorProto.Parser.ParseFrom(File.ReadAllBytes(path));
            var value = model.ReadTensor(tensor);
            types.Add(value.ElementType);
            return value;
        }

        private static string FirstLine(string message) => message.Split('\n')[0].Trim();
    }
}
