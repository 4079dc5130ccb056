using Google.Protobuf;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.TensorFlow;
using Quantize.Kernels.Quantization;
using Quantize.Kernels.Runtime;

namespace Quantize.Kernels.Tests.TensorFlow;

/// <summary>
/// quantize_weights' pattern (quint8 Const -> Dequantize MIN_FIRST -> MatMul/Conv2D) runs on the integer kernels, and its
/// results stay within the activation rounding bound of the float computation on the dequantized weights.
/// </summary>
public sealed class WeightsModeRuntimeTests
{
    private static NodeDef Const(string name, DataType type, int[] shape, byte[] content)
    {
        var tensor = new TensorProto { Dtype = type, TensorShape = new TensorShapeProto(), TensorContent = ByteString.CopyFrom(content) };
        foreach (int d in shape) tensor.TensorShape.Dim.Add(new TensorShapeProto.Types.Dim { Size = d });
        var node = new NodeDef { Name = name, Op = "Const" };
        node.Attr["dtype"] = new AttrValue { Type = type };
        node.Attr["value"] = new AttrValue { Tensor = tensor };
        return node;
    }

    private static NodeDef Node(string name, string op, params string[] inputs)
    {
        var node = new NodeDef { Name = name, Op = op };
        node.Input.AddRange(inputs);
        return node;
    }

    /// <summary>A float weight quantized as quantize_weights does, its four nodes, and the float64 dequantized values.</summary>
    private static (NodeDef[] Nodes, double[] Dequantized) QuantizedWeight(string name, int[] shape, Random random)
    {
        int count = shape.Aggregate(1, (a, b) => a * b);
        var w = Enumerable.Range(0, count).Select(_ => random.NextSingle() * 2 - 0.7f).ToArray();
        var (min, max) = TensorFlowQuantization.WeightRange(w);
        var q = new byte[count];
        TensorFlowQuantization.QuantizeMinFirst(w, min, max, q);
        var dequantize = Node(name, "Dequantize", name + "_quantized_const", name + "_quantized_min", name + "_quantized_max");
        dequantize.Attr["T"] = new AttrValue { Type = DataType.DtQuint8 };
        dequantize.Attr["mode"] = new AttrValue { S = ByteString.CopyFromUtf8("MIN_FIRST") };
        double step = ((double)max - min) / 255, offset = Math.Round(min / step, MidpointRounding.AwayFromZero) * step;
        return ([Const(name + "_quantized_const", DataType.DtQuint8, shape, q),
                 Const(name + "_quantized_min", DataType.DtFloat, [], BitConverter.GetBytes(min)),
                 Const(name + "_quantized_max", DataType.DtFloat, [], BitConverter.GetBytes(max)), dequantize],
                q.Select(v => offset + v * step).ToArray());
    }

    [Fact]
    public void MatMulOnDequantizedWeightsRunsOnInt8Gemm()
    {
        var random = new Random(3);
        const int m = 5, k = 70, n = 33;
        var graph = new GraphDef();
        var x = Node("x", "Placeholder");
        x.Attr["dtype"] = new AttrValue { Type = DataType.DtFloat };
        graph.Node.Add(x);
        var (weight, w) = QuantizedWeight("w", [k, n], random);
        graph.Node.Add(weight);
        graph.Node.Add(Node("y", "MatMul", "x", "w"));
        var bias = Enumerable.Range(0, n).Select(_ => random.NextSingle() - 0.5f).ToArray();
        graph.Node.Add(Const("b", DataType.DtFloat, [n], bias.SelectMany(BitConverter.GetBytes).ToArray()));
        graph.Node.Add(Node("z", "BiasAdd", "y", "b"));
        var input = Enumerable.Range(0, m * k).Select(_ => random.NextSingle() * 4 - 1).ToArray();

        using var session = ModelSession.Create(new GraphDefModel(graph), new SessionOptions { Threads = 1 });
        // One fused node: the int8 GEMM adds the bias itself.
        Assert.Equal("'y' (DynamicQuantizeMatMul)", Assert.Single(session.PlannedNodes));
        var y = session.Run(new Dictionary<string, Tensor> { ["x:0"] = Tensor.Create(input, m, k) })["z"].ToArray<float>();

        // The only rounding is the activations' (7 bits over their range, the runtime's choice for weight-only graphs):
        // at most half a step times the sum of |w| per column.
        double xStep = (Math.Max(input.Max(), 0) - Math.Min(input.Min(), 0)) / 127.0;
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double expected = bias[j], bound = 0;
                for (int p = 0; p < k; p++)
                {
                    expected += input[i * k + p] * w[p * n + j];
                    bound += Math.Abs(w[p * n + j]) * xStep / 2;
                }
                Assert.True(Math.Abs(y[i * n + j] - expected) <= bound * 1.01 + 1e-5, $"[{i},{j}]: {y[i * n + j]} vs {expected} (bound {bound})");
            }
        }
    }

    [Fact]
    public void Conv2DOnDequantizedFilterRunsOnInt8GemmAndFloatMatchesFloat64()
    {
        var random = new Random(5);
        var graph = new GraphDef();
        var x = Node("x", "Placeholder");
        x.Attr["dtype"] = new AttrValue { Type = DataType.DtFloat };
        graph.Node.Add(x);
        var (filter, w) = QuantizedWeight("f", [3, 3, 4, 6], random);
        graph.Node.Add(filter);
        var conv = Node("y", "Conv2D", "x", "f");
        conv.Attr["strides"] = new AttrValue { List = new AttrValue.Types.ListValue { I = { 1, 2, 2, 1 } } };
        conv.Attr["padding"] = new AttrValue { S = ByteString.CopyFromUtf8("SAME") };
        graph.Node.Add(conv);
        var bias = Enumerable.Range(0, 6).Select(_ => random.NextSingle() - 0.5f).ToArray();
        graph.Node.Add(Const("b", DataType.DtFloat, [6], bias.SelectMany(BitConverter.GetBytes).ToArray()));
        graph.Node.Add(Node("z", "Add", "b", "y"));
        int[] shape = [2, 7, 8, 4];
        var input = Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => random.NextSingle() * 2 - 1).ToArray();
        var feeds = new Dictionary<string, Tensor> { ["x"] = Tensor.Create(input, shape) };

        using var integer = ModelSession.Create(new GraphDefModel(graph), new SessionOptions { Threads = 1 });
        using var floating = ModelSession.Create(new GraphDefModel(graph), new SessionOptions { Threads = 1, UseIntegerKernels = false });
        Assert.Equal("'y' (Conv2D)", Assert.Single(integer.PlannedNodes));
        Assert.Equal("'y' (Conv2D)", Assert.Single(floating.PlannedNodes));
        var yInt = integer.Run(feeds)["z"];
        var yFloat = floating.Run(feeds)["z"].ToArray<float>();
        Assert.Equal([2, 4, 4, 6], yInt.Shape.ToArray());

        // Float64 SAME convolution: out = ceil(in / 2); padding total (out-1)*2 + 3 - in, the smaller half before.
        double xStep = (Math.Max(input.Max(), 0) - Math.Min(input.Min(), 0)) / 127.0; // 7-bit activations
        var got = yInt.ToArray<float>();
        int index = 0;
        for (int n = 0; n < 2; n++)
        for (int oy = 0; oy < 4; oy++)
        for (int ox = 0; ox < 4; ox++)
        for (int o = 0; o < 6; o++, index++)
        {
            double expected = bias[o], bound = 0;
            int padY = Math.Max((4 - 1) * 2 + 3 - 7, 0) / 2, padX = Math.Max((4 - 1) * 2 + 3 - 8, 0) / 2;
            for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++)
            for (int c = 0; c < 4; c++)
            {
                int iy = oy * 2 - padY + ky, ix = ox * 2 - padX + kx;
                if (iy < 0 || iy >= 7 || ix < 0 || ix >= 8) continue;
                double weight = w[((ky * 3 + kx) * 4 + c) * 6 + o];
                expected += input[((n * 7 + iy) * 8 + ix) * 4 + c] * weight;
                bound += Math.Abs(weight) * xStep / 2;
            }
            Assert.True(Math.Abs(yFloat[index] - expected) <= 1e-5 * Math.Max(1, Math.Abs(expected)), $"float {yFloat[index]} vs {expected}");
            Assert.True(Math.Abs(got[index] - expected) <= bound * 1.01 + 1e-5, $"int8 {got[index]} vs {expected} (bound {bound})");
        }
    }

    [Theory]
    [InlineData("MIN_COMBINED", DataType.DtQuint8)]
    [InlineData("MIN_FIRST", DataType.DtQuint8)]
    [InlineData("SCALED", DataType.DtQuint8)]
    [InlineData("MIN_COMBINED", DataType.DtQint8)]
    [InlineData("SCALED", DataType.DtQint8)]
    public void DequantizeMatchesFloat64Definition(string mode, DataType type)
    {
        byte[] q = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        float min = -1.3f, max = 2.9f;
        var graph = new GraphDef();
        graph.Node.Add(Const("q", type, [256], q));
        graph.Node.Add(Const("min", DataType.DtFloat, [], BitConverter.GetBytes(min)));
        graph.Node.Add(Const("max", DataType.DtFloat, [], BitConverter.GetBytes(max)));
        var dequantize = Node("y", "Dequantize", "q", "min", "max");
        dequantize.Attr["T"] = new AttrValue { Type = type };
        dequantize.Attr["mode"] = new AttrValue { S = ByteString.CopyFromUtf8(mode) };
        graph.Node.Add(dequantize);
        using var session = ModelSession.Create(new GraphDefModel(graph));
        var y = session.Run(new Dictionary<string, Tensor>())["y"].ToArray<float>();
        bool signed = type == DataType.DtQint8;
        for (int i = 0; i < 256; i++)
        {
            double v = signed ? (sbyte)q[i] : q[i];
            double expected = mode switch
            {
                // min + (q - lowest) * (max - min) / 255
                "MIN_COMBINED" => min + (v + (signed ? 128 : 0)) * ((double)max - min) / 255,
                // min rounded to whole steps, then q steps
                "MIN_FIRST" => Math.Round(min / (((double)max - min) / 255), MidpointRounding.AwayFromZero) * (((double)max - min) / 255) + v * ((double)max - min) / 255,
                // q * max(min / -128, max / 127) signed; q * max / 255 unsigned
                _ => signed ? v * Math.Max(min / -128.0, max / 127.0) : v * max / 255.0,
            };
            Assert.True(Math.Abs(y[i] - expected) <= 1e-6 * Math.Max(1, Math.Abs(expected)), $"{mode} {type} q={v}: {y[i]} vs {expected}");
        }
    }
}
