using Google.Protobuf;
using Quantize.Core.Quantization;
using Quantize.Core.Quantization.TensorFlow;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.TensorFlow;
using Quantize.Kernels.Runtime;
using Quantize.Tests;

namespace Quantize.Core.Tests.Quantization.TensorFlow;

/// <summary>
/// The GraphDef quantizer against graph_transforms' rules, written out here independently: which constants change, the
/// four nodes quantize_weights makes of each (names, ops, attributes), MIN_FIRST values checked with a float64
/// dequantization, every other node byte-identical; round_weights' buckets; the per-channel option.
/// </summary>
public sealed class GraphDefQuantizerTests(ITestOutputHelper output)
{
    private static readonly QuantizationOptions Weights = new() { Mode = QuantizationMode.Weights };

    public static TheoryData<string> FloatGraphs() =>
    [
        "tf2onnx_fc_layers.pb", "nnstreamer_mnist.pb", "utensor_simple_mnist.pb", "utensor_test_cnn_float.pb", "kws_ds_cnn_s.pb", "tf2onnx_lstm.pb",
    ];

    [Theory]
    [MemberData(nameof(FloatGraphs))]
    public void WeightsModeWritesQuantizeWeightsNodes(string graph)
    {
        byte[] source = File.ReadAllBytes(SharedData.Require("tf-graphs/" + graph));
        var result = GraphDefQuantizer.Quantize(source, graph, Weights);
        var before = GraphDef.Parser.ParseFrom(source);
        var after = ((GraphDefModel)result.Output).Proto;

        int position = 0, quantized = 0;
        foreach (var node in before.Node)
        {
            var tensor = GraphDefModel.ConstValue(node);
            long count = tensor?.TensorShape?.Dim.Aggregate(1L, (a, d) => a * d.Size) ?? 0;
            bool replaced = tensor is { Dtype: DataType.DtFloat } && node.Attr["dtype"].Type == DataType.DtFloat && count >= 1024;
            if (!replaced)
            {
                Assert.Equal(node.ToByteArray(), after.Node[position++].ToByteArray());
                continue;
            }
            quantized++;
            var values = GraphDefModel.Load(source, graph).ReadTensor(tensor!, node.Name).AsSpan<float>().ToArray();
            CheckQuantizeWeights(node, values, after.Node.Skip(position).Take(4).ToArray());
            position += 4;
        }
        Assert.Equal(after.Node.Count, position);
        Assert.Equal(quantized, result.QuantizedCount);
        output.WriteLine($"{graph}: {quantized} constants quantized, {source.Length} -> {result.Output.ToByteArray().Length} bytes");

        // Everything but the nodes is kept: the rest of the message is identical.
        var restBefore = before.Clone();
        restBefore.Node.Clear();
        var restAfter = after.Clone();
        restAfter.Node.Clear();
        Assert.Equal(restBefore.ToByteArray(), restAfter.ToByteArray());
    }

    /// <summary>quantize_weights' nodes for one constant, from its definition: min/max including 0, quint8 MIN_FIRST values.</summary>
    private static void CheckQuantizeWeights(NodeDef original, float[] values, NodeDef[] nodes)
    {
        string name = original.Name;
        Assert.Equal([name + "_quantized_const", name + "_quantized_min", name + "_quantized_max", name], nodes.Select(n => n.Name));
        Assert.Equal(["Const", "Const", "Const", "Dequantize"], nodes.Select(n => n.Op));
        Assert.All(nodes, n => Assert.Equal("", n.Device));
        Assert.Equal(["dtype", "value"], nodes[0].Attr.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(DataType.DtQuint8, nodes[0].Attr["dtype"].Type);
        Assert.Equal(DataType.DtQuint8, nodes[0].Attr["value"].Tensor.Dtype);
        Assert.Equal(original.Attr["value"].Tensor.TensorShape.Dim.Select(d => d.Size), nodes[0].Attr["value"].Tensor.TensorShape.Dim.Select(d => d.Size));
        Assert.Equal([name + "_quantized_const", name + "_quantized_min", name + "_quantized_max"], nodes[3].Input);
        Assert.Equal(["T", "mode"], nodes[3].Attr.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(DataType.DtQuint8, nodes[3].Attr["T"].Type);
        Assert.Equal("MIN_FIRST", nodes[3].Attr["mode"].S.ToStringUtf8());

        // quantize_weights: min over the values and 0; max over FLT_MIN (where its running maximum starts), the values and 0.
        float min = ScalarOf(nodes[1]), max = ScalarOf(nodes[2]);
        Assert.Equal(Math.Min(0f, values.Min()), min);
        Assert.Equal(Math.Max(FltMin, values.Max()), max);
        byte[] q = nodes[0].Attr["value"].Tensor.TensorContent.ToByteArray();
        Assert.Equal(values.Length, q.Length);
        // Dequantize(MIN_FIRST) in float64: step (max - min) / 255, min rounded to whole steps.
        double step = ((double)max - min) / 255;
        double offset = Math.Round(min / step, MidpointRounding.AwayFromZero) * step;
        for (int i = 0; i < values.Length; i++)
        {
            double dequantized = offset + q[i] * step;
            Assert.True(Math.Abs(dequantized - values[i]) <= step * 1.0001, $"{name}[{i}]: {values[i]} -> {q[i]} -> {dequantized}, step {step}");
        }
    }

    private static readonly float FltMin = 1.17549435e-38f;

    private static float ScalarOf(NodeDef node)
    {
        var tensor = node.Attr["value"].Tensor;
        Assert.Equal(DataType.DtFloat, tensor.Dtype);
        Assert.Empty(tensor.TensorShape.Dim);
        return BitConverter.ToSingle(tensor.TensorContent.Span);
    }

    [Fact]
    public void OutputIsDeterministicAndUntouchedBytesAreCopied()
    {
        byte[] source = File.ReadAllBytes(SharedData.Require("tf-graphs/tf2onnx_fc_layers.pb"));
        byte[] first = GraphDefQuantizer.Quantize(source, "fc", Weights).Output.ToByteArray();
        byte[] second = GraphDefQuantizer.Quantize(source, "fc", Weights).Output.ToByteArray();
        Assert.Equal(first, second);
        // Untouched nodes are the source's own bytes, found verbatim in the output.
        foreach (var node in GraphDef.Parser.ParseFrom(source).Node.Where(n => n.Op != "Const"))
            Assert.True(first.AsSpan().IndexOf(node.ToByteArray()) >= 0, node.Name);
    }

    [Fact]
    public void AlreadyQuantizedGraphIsRecognisedAndLeftAsItIs()
    {
        byte[] source = File.ReadAllBytes(SharedData.Require("tf-graphs/utensor_quant_mnist.pb"));
        var result = GraphDefQuantizer.Quantize(source, "quant_mnist", Weights);
        Assert.Equal(0, result.QuantizedCount);
        Assert.Contains(result.Notes, n => n.Contains("already quantized", StringComparison.Ordinal));
        Assert.Contains(result.Decisions, d => d.Reason == "not a float constant");
        Assert.Equal(source, result.Output.ToByteArray());
    }

    [Fact]
    public void AllZeroConstantGetsTensorFlowsRange()
    {
        var graph = new GraphDef();
        var node = new NodeDef { Name = "zeros", Op = "Const" };
        node.Attr["dtype"] = new AttrValue { Type = DataType.DtFloat };
        var tensor = new TensorProto { Dtype = DataType.DtFloat, TensorShape = new TensorShapeProto() };
        tensor.TensorShape.Dim.Add(new TensorShapeProto.Types.Dim { Size = 2048 });
        tensor.FloatVal.Add(0f); // one value, broadcast to all 2048 elements
        node.Attr["value"] = new AttrValue { Tensor = tensor };
        graph.Node.Add(node);
        var after = ((GraphDefModel)GraphDefQuantizer.Quantize(graph.ToByteArray(), "zeros.pb", Weights).Output).Proto;
        // TensorFlow's running maximum starts at FLT_MIN, so its min == max rule never fires here: the range is [0, FLT_MIN].
        Assert.Equal(0f, ScalarOf(after.Node[1]));
        Assert.Equal(FltMin, ScalarOf(after.Node[2]));
        Assert.All(after.Node[0].Attr["value"].Tensor.TensorContent.ToByteArray(), q => Assert.Equal(0, q));
    }

    [Fact]
    public void WeightsModeGraphStillReadsNine()
    {
        byte[] source = File.ReadAllBytes(SharedData.Require("tf-graphs/nnstreamer_mnist.pb"));
        byte[] pixels = File.ReadAllBytes(SharedData.Require("tf-graphs/nnstreamer_mnist_digit9.raw"));
        var digit = Tensor.Create(pixels.Select(p => (p - 127.5f) / 127.5f).ToArray(), 1, 784);
        var quantized = (GraphDefModel)GraphDefQuantizer.Quantize(source, "mnist", Weights).Output;
        foreach (var model in new[] { GraphDefModel.Load(source, "mnist"), quantized })
        {
            using var session = ModelSession.Create(model);
            var p = session.Run(new Dictionary<string, Tensor> { ["input"] = digit })["softmax"].ToArray<float>();
            output.WriteLine($"p[9] = {p[9]:F4}");
            Assert.Equal(9, Array.IndexOf(p, p.Max()));
        }
    }

    /// <summary>The keyword spotter with every weight of 16 elements or more quantized (depthwise filters and batch-norm vectors included), per tensor and per channel, still runs and keeps float's top-1.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void KeywordSpotterRunsWithQuantizedWeights(bool perChannel)
    {
        byte[] source = File.ReadAllBytes(SharedData.Require("tf-graphs/kws_ds_cnn_s.pb"));
        var options = Weights with { MinimumSize = 16, GraphDefPerChannel = perChannel };
        var result = GraphDefQuantizer.Quantize(source, "kws", options);
        Assert.Contains(result.Decisions, d => d.Quantized && d.Node.Contains("depthwise", StringComparison.Ordinal));
        var random = new Random(2);
        var mfcc = Tensor.Create(Enumerable.Range(0, 490).Select(_ => random.NextSingle() * 20 - 10).ToArray(), 1, 49, 10);
        var sessionOptions = new SessionOptions { Threads = 1, GraphDefInputs = ["Mfcc:0"] };
        float[] Probabilities(GraphDefModel model)
        {
            using var session = ModelSession.Create(model, sessionOptions);
            return session.Run(new Dictionary<string, Tensor> { ["Mfcc:0"] = mfcc })["labels_softmax"].ToArray<float>();
        }
        var expected = Probabilities(GraphDefModel.Load(source, "kws"));
        var actual = Probabilities((GraphDefModel)result.Output);
        double worst = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        output.WriteLine($"per channel {perChannel}: {result.QuantizedCount} weights, max probability difference {worst:G3}");
        Assert.Equal(Array.IndexOf(expected, expected.Max()), Array.IndexOf(actual, actual.Max()));
    }

    [Fact]
    public void RoundModeSnapsToBucketCentres()
    {
        byte[] source = File.ReadAllBytes(SharedData.Require("tf-graphs/nnstreamer_mnist.pb"));
        var before = GraphDefModel.Load(source, "mnist");
        var result = GraphDefQuantizer.Quantize(source, "mnist", new QuantizationOptions { Mode = QuantizationMode.Round });
        var after = (GraphDefModel)result.Output;
        Assert.Equal(before.Proto.Node.Select(n => (n.Name, n.Op)), after.Proto.Node.Select(n => (n.Name, n.Op)));
        var w = before.Proto.Node.Single(n => n.Name == "Weight");
        var rounded = after.ReadTensor(GraphDefModel.ConstValue(after.Proto.Node.Single(n => n.Name == "Weight"))!, "Weight").AsSpan<float>().ToArray();
        var original = before.ReadTensor(GraphDefModel.ConstValue(w)!, "Weight").AsSpan<float>().ToArray();
        double min = original.Min(), max = original.Max(), width = (max - min) / 256;
        Assert.True(rounded.Distinct().Count() <= 256);
        for (int i = 0; i < original.Length; i++)
        {
            double bucket = (rounded[i] - min) / width - 0.5;
            Assert.True(Math.Abs(bucket - Math.Round(bucket)) < 1e-3, $"{rounded[i]} is not a bucket centre");
            Assert.True(Math.Abs(rounded[i] - original[i]) <= width / 2 * 1.001);
        }
    }

    [Fact]
    public void PerChannelOptionWritesScaledQint8()
    {
        byte[] source = File.ReadAllBytes(SharedData.Require("tf-graphs/tf2onnx_fc_layers.pb"));
        var before = GraphDefModel.Load(source, "fc");
        var result = GraphDefQuantizer.Quantize(source, "fc", Weights with { GraphDefPerChannel = true });
        var after = (GraphDefModel)result.Output;
        var dequantize = after.Proto.Node.Single(n => n.Name == "dense/kernel");
        Assert.Equal("Dequantize", dequantize.Op);
        Assert.Equal("SCALED", dequantize.Attr["mode"].S.ToStringUtf8());
        Assert.Equal(DataType.DtQint8, dequantize.Attr["T"].Type);
        Assert.True(dequantize.Attr["narrow_range"].B);
        Assert.Equal(1, dequantize.Attr["axis"].I);
        var original = before.ReadTensor(GraphDefModel.ConstValue(before.FindNode("dense/kernel")!)!, "w").AsSpan<float>().ToArray();
        var q = after.ReadTensor(GraphDefModel.ConstValue(after.FindNode("dense/kernel_quantized_const")!)!, "q").AsSpan<sbyte>().ToArray();
        var maxs = after.ReadTensor(GraphDefModel.ConstValue(after.FindNode("dense/kernel_quantized_max")!)!, "max").AsSpan<float>().ToArray();
        int columns = maxs.Length;
        Assert.Equal(256, columns);
        for (int i = 0; i < original.Length; i++)
        {
            double scale = maxs[i % columns] / 127.0;
            Assert.InRange(q[i], (sbyte)-127, (sbyte)127);
            Assert.True(Math.Abs(q[i] * scale - original[i]) <= scale / 2 * 1.0001);
        }

        // It runs, on the integer kernels, close to the float graph.
        var x = Tensor.Create(Enumerable.Range(0, 784).Select(i => (i % 17) / 17f).ToArray(), 1, 784);
        using var floatSession = ModelSession.Create(before);
        using var quantizedSession = ModelSession.Create(after);
        var expected = floatSession.Run(new Dictionary<string, Tensor> { ["X"] = x })["output"].ToArray<float>();
        var actual = quantizedSession.Run(new Dictionary<string, Tensor> { ["X"] = x })["output"].ToArray<float>();
        Assert.Equal(Array.IndexOf(expected, expected.Max()), Array.IndexOf(actual, actual.Max()));
    }

    [Fact]
    public void SelectionOptionsApplyToConstantsAndTheirReaders()
    {
        byte[] source = File.ReadAllBytes(SharedData.Require("tf-graphs/utensor_test_cnn_float.pb"));
        var all = GraphDefQuantizer.Quantize(source, "cnn", Weights).Decisions.Where(d => d.Quantized).Select(d => d.Node).ToList();
        var withoutConv = GraphDefQuantizer.Quantize(source, "cnn", Weights with { ExcludeOpTypes = ["Conv2D"] }).Decisions;
        var onlyMatMul = GraphDefQuantizer.Quantize(source, "cnn", Weights with { IncludeOpTypes = ["MatMul"] }).Decisions;
        var byName = GraphDefQuantizer.Quantize(source, "cnn", Weights with { ExcludeNodes = [all[0]] }).Decisions;
        Assert.True(all.Count > 3);
        Assert.Equal(withoutConv.Where(d => d.Quantized).Select(d => d.Node), onlyMatMul.Where(d => d.Quantized).Select(d => d.Node));
        Assert.Contains(withoutConv, d => d.Reason == "read by an excluded op type");
        Assert.Contains(onlyMatMul, d => d.Quantized);
        Assert.Equal(all.Skip(1), byName.Where(d => d.Quantized).Select(d => d.Node));
    }

    [Fact]
    public void OtherModesAreRefusedForGraphDefs()
    {
        byte[] source = File.ReadAllBytes(SharedData.Require("tf-graphs/nnstreamer_mnist.pb"));
        var error = Assert.Throws<ArgumentException>(() => GraphDefQuantizer.Quantize(source, "mnist.pb", new QuantizationOptions { Mode = QuantizationMode.Dynamic }));
        Assert.Contains("--mode weights", error.Message);
    }

    [Fact]
    public void QuantizeFileDispatchesGraphDefs()
    {
        string folder = Path.Combine(Path.GetTempPath(), "graphdef-quantizer-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            string source = SharedData.Require("tf-graphs/tf2onnx_fc_layers.pb");
            string target = Path.Combine(folder, "fc.weights.pb");
            var summary = Quantizer.QuantizeFile(source, target, Weights);
            Assert.Equal(3, summary.Result.QuantizedCount);
            Assert.True(summary.OutputBytes < summary.SourceBytes / 3);
            Assert.IsType<GraphDefModel>(Model.Load(target));
            Assert.Throws<InvalidOperationException>(() => summary.Result.Model);
            Assert.Throws<ArgumentException>(() => Quantizer.QuantizeFile(source, Path.Combine(folder, "x.pb"), new QuantizationOptions { Mode = QuantizationMode.Static }));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
