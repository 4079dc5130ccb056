using Google.Protobuf;
using Quantize.Core.Quantization;
using Quantize.Kernels.Models.Onnx;
using static Quantize.Core.Tests.Quantization.TestGraphs;

namespace Quantize.Core.Tests.Quantization;

/// <summary>
/// The weights and dynamic modes on each op they handle: ONNX Runtime and our runtime both run the output and agree,
/// and both stay within int8 error of the float model (run by ONNX Runtime).
/// </summary>
public class ModeTests
{
    public static TheoryData<string, QuantizationMode> Cases()
    {
        var data = new TheoryData<string, QuantizationMode>();
        foreach (var op in new[] { "MatMul", "Gemm", "Conv", "Gather" })
        {
            data.Add(op, QuantizationMode.Weights);
            data.Add(op, QuantizationMode.Dynamic);
        }
        data.Add("ConvTranspose", QuantizationMode.Weights);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Quantized_op_runs_in_both_runtimes_close_to_float(string op, QuantizationMode mode)
    {
        var (model, input, shape, channels) = Build(op, new Random(op.Length * 31 + (int)mode));
        byte[] floatBytes = model.ToByteArray();
        var result = Quantizer.Quantize(new OnnxModel(model), new QuantizationOptions { Mode = mode });

        var decision = Assert.Single(result.Decisions, d => d.OpType == op);
        Assert.True(decision.Quantized, decision.Reason);
        // The float weight is gone; one scale per output channel.
        Assert.DoesNotContain(result.Model.Graph.Initializer, t => t.Name == "W");
        Assert.Contains(result.Model.Graph.Initializer, t => t.Name.StartsWith("W_scale", StringComparison.Ordinal) && t.Dims.Count == 1 && t.Dims[0] == channels);
        if (mode == QuantizationMode.Dynamic && op != "Gather")
            Assert.Contains(result.Model.Graph.Node, n => n.OpType is "MatMulInteger" or "ConvInteger");

        byte[] quantized = result.Model.ToByteArray();
        float[] reference = RunOrt(floatBytes, ("X", input, shape));
        float[] ort = RunOrt(quantized, ("X", input, shape));
        float[] ours = RunOurs(quantized, ("X", input, shape));

        double scale = reference.Max(v => Math.Abs(v));
        // Same integer arithmetic; the runtimes may round one activation differently (ORT multiplies by a reciprocal).
        for (int i = 0; i < ort.Length; i++)
            Assert.True(Math.Abs(ort[i] - ours[i]) <= 0.01 * scale, $"{op} {mode} [{i}]: ORT {ort[i]}, ours {ours[i]}");
        double cosine = Cosine(reference, ours);
        Assert.True(cosine >= (mode == QuantizationMode.Weights ? 0.9995 : 0.998), $"{op} {mode}: cosine to float {cosine:F6}");
    }

    [Fact]
    public void Weights_behind_Constant_nodes_and_Cast_are_found()
    {
        var random = new Random(3);
        var graph = new GraphProto { Name = "constants" };
        graph.Input.Add(Floats("X", 4, 64));
        graph.Output.Add(Floats("Y", 4, 32));
        var constant = Node("Constant", "weight_constant", [], ["W16"]);
        var half = Random(random, 64 * 32).Select(v => (Half)v).ToArray();
        var stored = new TensorProto { DataType = 10, RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(half.AsSpan())) };
        stored.Dims.AddRange([64, 32]);
        constant.Attribute.Add(new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = stored });
        graph.Node.Add(constant);
        graph.Node.Add(Node("Cast", "to_float", ["W16"], ["W32"], ("to", 1)));
        graph.Node.Add(Node("Identity", "same", ["W32"], ["W"]));
        graph.Node.Add(Node("MatMul", "mm", ["X", "W"], ["Y"]));
        var model = Model(graph);

        var result = Quantizer.Quantize(new OnnxModel(model), new QuantizationOptions());
        Assert.True(Assert.Single(result.Decisions).Quantized);
        // The Constant, Cast and Identity nodes went with the float weight.
        Assert.DoesNotContain(result.Model.Graph.Node, n => n.OpType is "Constant" or "Cast" && n.Name != "" && n.Name.StartsWith("weight", StringComparison.Ordinal));
        Assert.DoesNotContain(result.Model.Graph.Node, n => n.Name is "to_float" or "same" or "weight_constant");
        float[] x = Random(random, 4 * 64);
        float[] reference = RunOrt(model.ToByteArray(), ("X", x, [4, 64]));
        float[] ours = RunOurs(result.Model.ToByteArray(), ("X", x, [4, 64]));
        Assert.True(Cosine(reference, ours) >= 0.998);
    }

    [Fact]
    public void A_weight_shared_by_two_MatMuls_is_quantized_once()
    {
        var random = new Random(5);
        var graph = new GraphProto { Name = "shared" };
        graph.Input.Add(Floats("X", 2, 64));
        graph.Output.Add(Floats("Y", 2, 64));
        graph.Initializer.Add(FloatTensor("W", [64, 64], Random(random, 64 * 64)));
        graph.Node.Add(Node("MatMul", "first", ["X", "W"], ["H"]));
        graph.Node.Add(Node("MatMul", "second", ["H", "W"], ["Y"]));
        var result = Quantizer.Quantize(new OnnxModel(Model(graph)), new QuantizationOptions { Mode = QuantizationMode.Weights });
        Assert.Equal(2, result.QuantizedCount);
        Assert.Single(result.Model.Graph.Initializer, t => t.DataType == (int)TensorProto.Types.DataType.Int8 && t.Dims.Count == 2);
    }

    [Fact]
    public void Options_exclude_by_glob_and_op_type_and_include_restricts()
    {
        var random = new Random(9);
        var graph = new GraphProto { Name = "three" };
        graph.Input.Add(Floats("X", 2, 64));
        graph.Output.Add(Floats("Y", 2, 64));
        foreach (var name in new[] { "W1", "W2", "W3" }) graph.Initializer.Add(FloatTensor(name, [64, 64], Random(random, 64 * 64)));
        graph.Node.Add(Node("MatMul", "encoder/layer0/query", ["X", "W1"], ["A"]));
        graph.Node.Add(Node("MatMul", "encoder/layer0/key", ["A", "W2"], ["B"]));
        graph.Node.Add(Node("MatMul", "decoder/out", ["B", "W3"], ["Y"]));
        var source = new OnnxModel(Model(graph));

        var excluded = Quantizer.Quantize(source, new QuantizationOptions { ExcludeNodes = ["encoder/*"] });
        Assert.Equal(["decoder/out"], excluded.Decisions.Where(d => d.Quantized).Select(d => d.Node));
        Assert.All(excluded.Decisions.Where(d => !d.Quantized), d => Assert.Equal("excluded by name", d.Reason));

        var included = Quantizer.Quantize(source, new QuantizationOptions { IncludeNodes = ["*/query"] });
        Assert.Equal(["encoder/layer0/query"], included.Decisions.Where(d => d.Quantized).Select(d => d.Node));

        var byType = Quantizer.Quantize(source, new QuantizationOptions { ExcludeOpTypes = ["MatMul"] });
        Assert.Equal(0, byType.QuantizedCount);
    }

    [Fact]
    public void Bad_options_are_refused_with_the_option_named()
    {
        var source = new OnnxModel(Model(new GraphProto()));
        Assert.Contains("block size", Assert.Throws<ArgumentException>(() => Quantizer.Quantize(source, new QuantizationOptions { Int4BlockSize = 48 })).Message);
        Assert.Contains("uint8", Assert.Throws<ArgumentException>(() => Quantizer.Quantize(source,
            new QuantizationOptions { ActivationType = Kernels.Models.TensorElementType.Int8 })).Message);
    }

    private static (ModelProto Model, float[] Input, long[] Shape, int Channels) Build(string op, Random random)
    {
        var graph = new GraphProto { Name = op };
        switch (op)
        {
            case "MatMul":
                graph.Input.Add(Floats("X", 5, 96));
                graph.Output.Add(Floats("Y", 5, 48));
                graph.Initializer.Add(FloatTensor("W", [96, 48], Random(random, 96 * 48)));
                graph.Node.Add(Node("MatMul", "mm", ["X", "W"], ["Y"]));
                return (Model(graph), Random(random, 5 * 96, 3), [5, 96], 48);
            case "Gemm":
                // Y = 0.5 X W^T + 2 C: the per-channel axis of a transposed weight is 0.
                graph.Input.Add(Floats("X", 4, 80));
                graph.Output.Add(Floats("Y", 4, 40));
                graph.Initializer.Add(FloatTensor("W", [40, 80], Random(random, 40 * 80)));
                graph.Initializer.Add(FloatTensor("C", [40], Random(random, 40)));
                var gemm = Node("Gemm", "gemm", ["X", "W", "C"], ["Y"], ("transB", 1));
                gemm.Attribute.Add(new AttributeProto { Name = "alpha", Type = AttributeProto.Types.AttributeType.Float, F = 0.5f });
                gemm.Attribute.Add(new AttributeProto { Name = "beta", Type = AttributeProto.Types.AttributeType.Float, F = 2f });
                graph.Node.Add(gemm);
                return (Model(graph), Random(random, 4 * 80, 2), [4, 80], 40);
            case "Conv":
                graph.Input.Add(Floats("X", 1, 6, 9, 9));
                graph.Output.Add(Floats("Y", 1, 24, 5, 5));
                graph.Initializer.Add(FloatTensor("W", [24, 6, 3, 3], Random(random, 24 * 6 * 9)));
                graph.Initializer.Add(FloatTensor("B", [24], Random(random, 24)));
                graph.Node.Add(Node("Conv", "conv", ["X", "W", "B"], ["Y"]).Ints("pads", 1, 1, 1, 1).Ints("strides", 2, 2));
                return (Model(graph), Random(random, 6 * 81, 2), [1, 6, 9, 9], 24);
            case "ConvTranspose":
                graph.Input.Add(Floats("X", 1, 8, 5, 5));
                graph.Output.Add(Floats("Y", 1, 16, 11, 11));
                graph.Initializer.Add(FloatTensor("W", [8, 16, 3, 3], Random(random, 8 * 16 * 9)));
                graph.Node.Add(Node("ConvTranspose", "deconv", ["X", "W"], ["Y"]).Ints("strides", 2, 2));
                return (Model(graph), Random(random, 8 * 25, 2), [1, 8, 5, 5], 16);
            case "Gather":
                // An embedding lookup, then a float input added so the graph has something to feed.
                graph.Input.Add(Floats("X", 6, 32));
                graph.Output.Add(Floats("Y", 6, 32));
                graph.Initializer.Add(FloatTensor("W", [100, 32], Random(random, 100 * 32)));
                graph.Initializer.Add(Int64Tensor("ids", [6], [0, 99, 7, 7, 42, 13]));
                graph.Node.Add(Node("Gather", "embed", ["W", "ids"], ["E"], ("axis", 0)));
                graph.Node.Add(Node("Add", "add", ["E", "X"], ["Y"]));
                return (Model(graph), Random(random, 6 * 32), [6, 32], 32);
            default:
                throw new ArgumentException(op);
        }
    }
}
