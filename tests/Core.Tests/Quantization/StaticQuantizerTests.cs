using Google.Protobuf;
using Quantize.Core.Quantization;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;
using static Quantize.Core.Tests.Quantization.TestGraphs;
using Tensor = Quantize.Kernels.Runtime.Tensor;

namespace Quantize.Core.Tests.Quantization;

/// <summary>
/// The static (QDQ) mode on a small convolutional network with BatchNormalization, a residual Add, MaxPool and a
/// Gemm head: the graph has the shape ONNX Runtime's quantize_static writes, the parameters follow from the
/// calibration data by the definitions (checked here from the samples, not from the quantizer), and ONNX Runtime and
/// our runtime run it, agree, and stay close to the float model on inputs it was not calibrated on.
/// </summary>
public class StaticQuantizerTests
{
    private static readonly long[] InputShape = [1, 3, 12, 12];

    [Fact]
    public void Conv_network_becomes_QDQ_that_both_runtimes_run_close_to_float()
    {
        var random = new Random(5);
        var model = ConvNetwork(random);
        var calibration = Samples(random, 16);
        var options = new QuantizationOptions { Mode = QuantizationMode.Static, MinimumSize = 16, Threads = 1 };
        var result = Quantizer.Quantize(new OnnxModel(model.Clone()), options, () => calibration);
        var graph = result.Model.Graph;

        Assert.DoesNotContain(graph.Node, n => n.OpType == "BatchNormalization"); // folded into the first Conv
        foreach (string op in new[] { "Conv", "Gemm", "Add", "MaxPool" })
        {
            var decisions = result.Decisions.Where(d => d.OpType == op).ToList();
            Assert.NotEmpty(decisions);
            Assert.All(decisions, d => Assert.True(d.Quantized, $"{d.Node}: {d.Reason}"));
        }
        var producers = graph.Node.SelectMany(n => n.Output.Select(o => (o, n))).ToDictionary(p => p.o, p => p.n);
        var initializers = graph.Initializer.ToDictionary(t => t.Name);
        foreach (var node in graph.Node.Where(n => n.OpType is "Conv" or "Gemm"))
        {
            // Activation in through a QuantizeLinear -> DequantizeLinear pair, weight int8 behind DequantizeLinear, bias int32.
            var x = producers[node.Input[0]];
            Assert.Equal("DequantizeLinear", x.OpType);
            Assert.Equal("QuantizeLinear", producers[x.Input[0]].OpType);
            var w = producers[node.Input[1]];
            Assert.Equal("DequantizeLinear", w.OpType);
            Assert.Equal(3, initializers[w.Input[0]].DataType); // int8
            var b = producers[node.Input[2]];
            Assert.Equal(6, initializers[b.Input[0]].DataType); // int32
            float xScale = Values(initializers[x.Input[1]])[0];
            float[] wScales = Values(initializers[w.Input[1]]), bScales = Values(initializers[b.Input[1]]);
            Assert.Equal(wScales.Length, bScales.Length);
            for (int c = 0; c < bScales.Length; c++) Assert.Equal(xScale * wScales[c], bScales[c]);
        }
        // The graph input's parameters are min/max over the calibration samples (range widened to hold 0), uint8.
        var inputPair = graph.Node.First(n => n.OpType == "QuantizeLinear" && n.Input[0] == "X");
        double min = Math.Min(0, calibration.Min(s => s["X"].ToArray<float>().Min())), max = Math.Max(0, calibration.Max(s => s["X"].ToArray<float>().Max()));
        Assert.Equal((max - min) / 255, Values(initializers[inputPair.Input[1]])[0], 1e-6);
        Assert.Equal(Math.Round(-min / ((max - min) / 255)), initializers[inputPair.Input[2]].RawData[0]);
        // The output stays float.
        Assert.NotEqual("DequantizeLinear", producers["Y"].OpType);

        byte[] floatBytes = model.ToByteArray(), quantized = result.Model.ToByteArray();
        var cosines = new List<double>();
        foreach (var sample in Samples(new Random(99), 8))
        {
            float[] x = sample["X"].ToArray<float>();
            float[] reference = RunOrt(floatBytes, ("X", x, InputShape));
            float[] ort = RunOrt(quantized, ("X", x, InputShape));
            float[] ours = RunOurs(quantized, ("X", x, InputShape));
            double scale = reference.Max(v => Math.Abs(v));
            for (int i = 0; i < ort.Length; i++)
                Assert.True(Math.Abs(ort[i] - ours[i]) <= 0.02 * scale, $"[{i}]: ORT {ort[i]}, ours {ours[i]}");
            cosines.Add(Cosine(reference, ours));
        }
        Assert.True(cosines.Min() >= 0.99, $"worst cosine to float {cosines.Min():F5}");
    }

    [Fact]
    public void Static_mode_needs_calibration_data()
    {
        var error = Assert.Throws<ArgumentException>(() =>
            Quantizer.Quantize(new OnnxModel(ConvNetwork(new Random(1))), new QuantizationOptions { Mode = QuantizationMode.Static }));
        Assert.Contains("calibration", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Output_is_byte_identical_on_one_and_two_threads()
    {
        var model = ConvNetwork(new Random(8));
        var samples = Samples(new Random(9), 6);
        byte[] Run(int threads) => Quantizer.Quantize(new OnnxModel(model.Clone()),
            new QuantizationOptions { Mode = QuantizationMode.Static, MinimumSize = 16, Threads = threads, CalibrationMethod = CalibrationMethod.Entropy }, () => samples)
            .Model.ToByteArray();
        byte[] one = Run(1);
        Assert.Equal(one, Run(2));
        Assert.Equal(one, Run(1));
    }

    [Fact]
    public void Excluded_and_small_layers_stay_float_with_a_reason()
    {
        var model = ConvNetwork(new Random(2));
        var samples = Samples(new Random(3), 4);
        var result = Quantizer.Quantize(new OnnxModel(model),
            new QuantizationOptions { Mode = QuantizationMode.Static, ExcludeNodes = ["c2"], Threads = 1 }, () => samples);
        var c2 = Assert.Single(result.Decisions, d => d.Node == "c2");
        Assert.False(c2.Quantized);
        // The Gemm weight (80 elements) is under the default minimum size.
        var head = Assert.Single(result.Decisions, d => d.OpType == "Gemm");
        Assert.False(head.Quantized);
        Assert.Contains("1024", head.Reason, StringComparison.Ordinal);
        Assert.Contains(result.Model.Graph.Node, n => n.Name == "c2" && n.Input[1] == "W2");
    }

    [Fact]
    public void Default_mode_is_static_for_a_conv_network_with_data_and_dynamic_otherwise()
    {
        var conv = new OnnxModel(ConvNetwork(new Random(4)));
        Assert.Equal(QuantizationMode.Static, Quantizer.DefaultMode(conv, hasCalibration: true));
        Assert.Equal(QuantizationMode.Dynamic, Quantizer.DefaultMode(conv, hasCalibration: false));
        var graph = new GraphProto { Name = "mlp" };
        graph.Input.Add(Floats("X", 1, 4));
        graph.Output.Add(Floats("Y", 1, 4));
        graph.Initializer.Add(FloatTensor("W", [4, 4], new float[16]));
        graph.Node.Add(Node("MatMul", "mm", ["X", "W"], ["Y"]));
        Assert.Equal(QuantizationMode.Dynamic, Quantizer.DefaultMode(new OnnxModel(Model(graph)), hasCalibration: true));
    }

    /// <summary>X -> Conv -> BatchNormalization -> Relu -> Conv -> Add(residual) -> Relu -> MaxPool -> GlobalAveragePool -> Flatten -> Gemm -> Y.</summary>
    private static ModelProto ConvNetwork(Random random)
    {
        var graph = new GraphProto { Name = "convnet" };
        graph.Input.Add(Floats("X", InputShape));
        graph.Output.Add(Floats("Y", 1, 10));
        graph.Initializer.Add(FloatTensor("W1", [8, 3, 3, 3], Random(random, 216, 0.4f)));
        graph.Initializer.Add(FloatTensor("B1", [8], Random(random, 8, 0.1f)));
        graph.Initializer.Add(FloatTensor("bn_scale", [8], Random(random, 8).Select(v => 1 + 0.3f * v).ToArray()));
        graph.Initializer.Add(FloatTensor("bn_bias", [8], Random(random, 8, 0.2f)));
        graph.Initializer.Add(FloatTensor("bn_mean", [8], Random(random, 8, 0.1f)));
        graph.Initializer.Add(FloatTensor("bn_var", [8], Random(random, 8).Select(v => 0.8f + 0.3f * v).ToArray()));
        graph.Initializer.Add(FloatTensor("W2", [8, 8, 3, 3], Random(random, 576, 0.2f)));
        graph.Initializer.Add(FloatTensor("B2", [8], Random(random, 8, 0.1f)));
        graph.Initializer.Add(FloatTensor("W3", [10, 8], Random(random, 80, 0.5f)));
        graph.Initializer.Add(FloatTensor("B3", [10], Random(random, 10, 0.1f)));
        graph.Node.Add(Node("Conv", "c1", ["X", "W1", "B1"], ["t1"]).Ints("pads", 1, 1, 1, 1));
        graph.Node.Add(Node("BatchNormalization", "bn", ["t1", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["t2"]));
        graph.Node.Add(Node("Relu", "r1", ["t2"], ["t3"]));
        graph.Node.Add(Node("Conv", "c2", ["t3", "W2", "B2"], ["t4"]).Ints("pads", 1, 1, 1, 1));
        graph.Node.Add(Node("Add", "Add", ["t4", "t3"], ["t5"]));
        graph.Node.Add(Node("Relu", "r2", ["t5"], ["t6"]));
        graph.Node.Add(Node("MaxPool", "MaxPool", ["t6"], ["t7"]).Ints("kernel_shape", 2, 2).Ints("strides", 2, 2));
        graph.Node.Add(Node("GlobalAveragePool", "gap", ["t7"], ["t8"]));
        graph.Node.Add(Node("Flatten", "flat", ["t8"], ["t9"]));
        graph.Node.Add(Node("Gemm", "Gemm", ["t9", "W3", "B3"], ["Y"], ("transB", 1)));
        return Model(graph, 13);
    }

    private static List<Dictionary<string, Tensor>> Samples(Random random, int count) =>
        Enumerable.Range(0, count)
            .Select(_ => new Dictionary<string, Tensor> { ["X"] = Tensor.Create(Random(random, 432).Select(v => v + 0.3f).ToArray(), [1, 3, 12, 12]) })
            .ToList();

    private static float[] Values(TensorProto tensor) =>
        tensor.FloatData.Count > 0 ? tensor.FloatData.ToArray() : System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(tensor.RawData.Span).ToArray();
}
