using System.Runtime.InteropServices;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Quantize.Core.Quantization;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;
using OrtSessionOptions = Microsoft.ML.OnnxRuntime.SessionOptions;
using SessionOptions = Quantize.Kernels.Runtime.SessionOptions;
using Tensor = Quantize.Kernels.Runtime.Tensor;

namespace Quantize.Core.Tests.Quantization;

/// <summary>
/// The int4 mode on small models: the packed bytes, decoded here independently from ONNX Runtime's MatMulNBits
/// layout and ONNX's int4 rule, are within int4 rounding of the float weights; ONNX Runtime and our runtime run
/// both formats and agree; and both stay within the int4 rounding bound of the float64 product.
/// </summary>
public class Int4QuantizerTests(ITestOutputHelper output)
{
    public static TheoryData<int, int, int, bool, Int4Format> Shapes() => new()
    {
        // K not a multiple of the block size (and K below it), each block size, both kinds of block, both formats.
        { 100, 48, 16, true, Int4Format.MatMulNBits },
        { 100, 48, 16, false, Int4Format.MatMulNBits },
        { 200, 40, 32, true, Int4Format.MatMulNBits },
        { 200, 40, 32, false, Int4Format.MatMulNBits },
        { 300, 24, 128, true, Int4Format.MatMulNBits },
        { 50, 40, 128, false, Int4Format.MatMulNBits },
        { 100, 48, 16, true, Int4Format.DequantizeLinear },
        { 200, 40, 32, false, Int4Format.DequantizeLinear },
        { 300, 24, 128, true, Int4Format.DequantizeLinear },
        { 300, 24, 128, false, Int4Format.DequantizeLinear },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Matmul_weights_decode_within_int4_rounding_and_both_runtimes_agree_with_the_float64_product(int k, int n, int blockSize, bool symmetric, Int4Format format)
    {
        var random = new Random(k * 7919 + n * 31 + blockSize + (symmetric ? 1 : 0));
        int m = 5;
        float[] w = RandomWeights(random, k, n), bias = Enumerable.Range(0, n).Select(_ => random.NextSingle() - 0.5f).ToArray();
        float[] x = Enumerable.Range(0, m * k).Select(_ => random.NextSingle() * 4 - 2).ToArray();
        var source = new OnnxModel(Model(21, MatMulAdd(m, k, n, w, bias)));
        var options = new QuantizationOptions { Mode = QuantizationMode.Int4, Int4BlockSize = blockSize, Int4Symmetric = symmetric, Int4Format = format };

        var result = Int4Quantizer.Quantize(source, options);
        var decision = Assert.Single(result.Decisions);
        Assert.True(decision.Quantized, decision.Reason);
        var graph = result.Model.Graph;
        Assert.DoesNotContain(graph.Initializer, t => t.Name == "W");
        var decoded = Decode(result.Model, graph.Node.First(node => node.OpType is "MatMulNBits" or "DequantizeLinear"));
        Assert.Equal((k, n), (decoded.K, decoded.N));
        Assert.Equal(symmetric, !decoded.HasZeroPoints);

        CheckBlocks(w, decoded, blockSize, symmetric);

        byte[] bytes = result.Model.ToByteArray();
        var feeds = new Dictionary<string, (float[], long[])> { ["X"] = (x, [m, k]) };
        float[] ort = RunOrt(bytes, feeds, "Y");
        float[] ours = RunOurs(bytes, feeds, "Y");
        double worstAgreement = 0, worstBoundUse = 0;
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double exact = bias[j], decodedExact = bias[j], magnitude = 0, bound = 0;
                for (int t = 0; t < k; t++)
                {
                    exact += (double)x[i * k + t] * w[t * n + j];
                    decodedExact += x[i * k + t] * decoded.Values[t * n + j];
                    magnitude += Math.Abs((double)x[i * k + t] * decoded.Values[t * n + j]);
                    bound += Math.Abs(x[i * k + t]) * ElementBound(w, k, n, t, j, blockSize, symmetric);
                }
                double got = ours[i * n + j], theirs = ort[i * n + j];
                // Both run the weights as decoded here.
                Assert.True(Math.Abs(theirs - decodedExact) <= 1e-5 * magnitude + 1e-6, $"({i},{j}): ORT {theirs}, decoded weights {decodedExact}, ours {got}");
                Assert.True(Math.Abs(got - decodedExact) <= 1e-5 * magnitude + 1e-6, $"({i},{j}): ours {got}, decoded weights {decodedExact}, ORT {theirs}");
                // The rounding bound of the weights, plus float32 accumulation.
                Assert.True(Math.Abs(got - exact) <= bound + 1e-5 * magnitude + 1e-6, $"({i},{j}): {got} vs float64 {exact} (bound {bound})");
                worstAgreement = Math.Max(worstAgreement, Math.Abs(got - theirs) / (magnitude + 1e-9));
                worstBoundUse = Math.Max(worstBoundUse, Math.Abs(got - exact) / bound);
            }
        }
        output.WriteLine($"K={k} N={n} block {blockSize} {(symmetric ? "symmetric" : "asymmetric")} {format}: ours~ORT worst {worstAgreement:E2} of sum|x*w|, error up to {worstBoundUse:P0} of the int4 bound");
    }

    [Fact]
    public void Weights_in_a_constant_node_and_behind_a_float16_cast_are_found_and_their_nodes_dropped()
    {
        var random = new Random(3);
        int m = 3, k = 96, n = 32;
        float[] w1 = RandomWeights(random, k, n), w2 = RandomWeights(random, n, n);
        var half = w2.Select(v => (Half)v).ToArray();
        float[] w2AsUsed = half.Select(h => (float)h).ToArray();

        var graph = new GraphProto { Name = "constant_weights" };
        graph.Input.Add(Value("X", m, k));
        graph.Output.Add(Value("Y", m, n));
        var constant = Node("Constant", "weight1", [], ["W1"]);
        constant.Attribute.Add(new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = Floats("", [k, n], w1) });
        graph.Node.Add(constant);
        byte[] halfBytes = MemoryMarshal.AsBytes(half.AsSpan()).ToArray();
        var stored = new TensorProto { Name = "W2_half", DataType = (int)TensorProto.Types.DataType.Float16, RawData = ByteString.CopyFrom(halfBytes) };
        stored.Dims.AddRange([n, n]);
        graph.Initializer.Add(stored);
        var cast = Node("Cast", "to_float", ["W2_half"], ["W2"]);
        cast.Attribute.Add(new AttributeProto { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = (int)TensorProto.Types.DataType.Float });
        graph.Node.Add(cast);
        graph.Node.Add(Node("MatMul", "first", ["X", "W1"], ["H"]));
        graph.Node.Add(Node("MatMul", "second", ["H", "W2"], ["Y"]));

        var result = Int4Quantizer.Quantize(new OnnxModel(Model(17, graph)), Int4Options());
        Assert.All(result.Decisions, d => Assert.True(d.Quantized, $"{d.Node}: {d.Reason}"));
        Assert.Equal(2, result.QuantizedCount);
        Assert.Equal(["MatMulNBits", "MatMulNBits"], result.Model.Graph.Node.Select(node => node.OpType));
        Assert.DoesNotContain(result.Model.Graph.Initializer, t => t.Name == "W2_half");

        // The bytes hold the float weights (the second as float16 rounded them) ...
        var nodes = result.Model.Graph.Node;
        var first = Decode(result.Model, nodes[0]);
        var second = Decode(result.Model, nodes[1]);
        CheckBlocks(w1, first, 32, symmetric: true);
        CheckBlocks(w2AsUsed, second, 32, symmetric: true);

        // ... and both runtimes multiply by them.
        float[] x = Enumerable.Range(0, m * k).Select(_ => random.NextSingle() * 2 - 1).ToArray();
        byte[] bytes = result.Model.ToByteArray();
        var feeds = new Dictionary<string, (float[], long[])> { ["X"] = (x, [m, k]) };
        float[] ort = RunOrt(bytes, feeds, "Y"), ours = RunOurs(bytes, feeds, "Y");
        double[] exact = Product(Product(x.Select(v => (double)v).ToArray(), m, k, first.Values, n), m, n, second.Values, n);
        double scale = exact.Max(Math.Abs);
        for (int i = 0; i < m * n; i++)
        {
            Assert.True(Math.Abs(ort[i] - exact[i]) <= 1e-5 * scale, $"{i}: ORT {ort[i]}, float64 of the decoded weights {exact[i]}");
            Assert.True(Math.Abs(ours[i] - exact[i]) <= 1e-5 * scale, $"{i}: ours {ours[i]}, float64 of the decoded weights {exact[i]}");
        }
    }

    [Theory]
    [InlineData(Int4Format.MatMulNBits)]
    [InlineData(Int4Format.DequantizeLinear)]
    public void A_shared_weight_is_quantized_once(Int4Format format)
    {
        var random = new Random(11);
        int m = 2, k = 64, n = 48;
        float[] w = RandomWeights(random, k, n);
        var graph = new GraphProto { Name = "shared" };
        graph.Input.Add(Value("X1", m, k));
        graph.Input.Add(Value("X2", m, k));
        graph.Output.Add(Value("Y1", m, n));
        graph.Output.Add(Value("Y2", m, n));
        graph.Initializer.Add(Floats("W", [k, n], w));
        graph.Node.Add(Node("MatMul", "first", ["X1", "W"], ["Y1"]));
        graph.Node.Add(Node("MatMul", "second", ["X2", "W"], ["Y2"]));

        var result = Int4Quantizer.Quantize(new OnnxModel(Model(21, graph)), Int4Options() with { Int4Format = format });
        Assert.Equal(2, result.QuantizedCount);
        Assert.Contains("shared", result.Decisions[1].Reason);
        var g = result.Model.Graph;
        Assert.Equal(2, g.Initializer.Count); // the 4-bit values and the scales, once
        Assert.DoesNotContain(g.Initializer, t => t.Name == "W");
        if (format == Int4Format.MatMulNBits)
        {
            var nodes = g.Node.Where(node => node.OpType == "MatMulNBits").ToArray();
            Assert.Equal(2, nodes.Length);
            Assert.Equal(nodes[0].Input.Skip(1), nodes[1].Input.Skip(1));
        }
        else
        {
            var dequantize = Assert.Single(g.Node, node => node.OpType == "DequantizeLinear");
            Assert.All(g.Node.Where(node => node.OpType == "MatMul"), node => Assert.Equal(dequantize.Output[0], node.Input[1]));
        }

        byte[] bytes = result.Model.ToByteArray();
        float[] x = Enumerable.Range(0, m * k).Select(_ => random.NextSingle()).ToArray();
        var feeds = new Dictionary<string, (float[], long[])> { ["X1"] = (x, [m, k]), ["X2"] = (x, [m, k]) };
        Assert.Equal(RunOrt(bytes, feeds, "Y1"), RunOrt(bytes, feeds, "Y2"));
    }

    [Fact]
    public void Small_weights_excluded_nodes_and_computed_operands_stay_float_with_a_reason()
    {
        int m = 2, k = 64, n = 32;
        var graph = new GraphProto { Name = "refusals" };
        graph.Input.Add(Value("X", m, k));
        graph.Input.Add(Value("Z", 16, 8));
        graph.Output.Add(Value("Y", m, 8));
        graph.Initializer.Add(Floats("Big", [k, n], RandomWeights(new Random(5), k, n)));
        graph.Initializer.Add(Floats("Small", [n, 16], RandomWeights(new Random(6), n, 16)));
        graph.Node.Add(Node("MatMul", "block0/big", ["X", "Big"], ["A"]));
        graph.Node.Add(Node("MatMul", "small", ["A", "Small"], ["B"]));
        graph.Node.Add(Node("MatMul", "computed", ["B", "Z"], ["Y"]));
        var source = new OnnxModel(Model(21, graph));

        var result = Int4Quantizer.Quantize(source, Int4Options() with { ExcludeNodes = ["block0/*"] });
        Assert.Equal(3, result.Decisions.Count);
        Assert.All(result.Decisions, d => Assert.False(d.Quantized));
        Assert.Equal("excluded by name", result.Decisions[0].Reason);
        Assert.Equal("the weight has fewer than 1024 elements", result.Decisions[1].Reason);
        Assert.Equal("the weight is not a constant float tensor", result.Decisions[2].Reason);
        Assert.Equal(source.ToByteArray(), result.Model.ToByteArray());
    }

    [Fact]
    public void The_standard_format_needs_opset_21_and_does_not_bump_it()
    {
        var random = new Random(2);
        var source = new OnnxModel(Model(17, MatMulAdd(2, 64, 32, RandomWeights(random, 64, 32), new float[32])));
        var result = Int4Quantizer.Quantize(source, Int4Options() with { Int4Format = Int4Format.DequantizeLinear });
        var decision = Assert.Single(result.Decisions);
        Assert.False(decision.Quantized);
        Assert.Equal("standard int4 needs opset 21; the model imports 17: use the MatMulNBits format", decision.Reason);
        Assert.Equal(source.ToByteArray(), result.Model.ToByteArray());
    }

    [Theory]
    [InlineData(Int4Format.MatMulNBits)]
    [InlineData(Int4Format.DequantizeLinear)]
    public void The_source_model_is_not_changed_and_the_output_is_deterministic(Int4Format format)
    {
        var random = new Random(1);
        var source = new OnnxModel(Model(21, MatMulAdd(2, 80, 32, RandomWeights(random, 80, 32), new float[32])));
        byte[] before = source.ToByteArray();
        var options = Int4Options() with { Int4Format = format, Int4Symmetric = false };
        byte[] first = Int4Quantizer.Quantize(source, options).Model.ToByteArray();
        Assert.Equal(before, source.ToByteArray());
        Assert.Equal(first, Int4Quantizer.Quantize(new OnnxModel(ModelProto.Parser.ParseFrom(before)), options).Model.ToByteArray());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(8)]
    [InlineData(48)]
    [InlineData(512)]
    public void An_invalid_block_size_is_refused(int blockSize)
    {
        var source = new OnnxModel(Model(21, MatMulAdd(2, 64, 32, new float[64 * 32], new float[32])));
        var error = Assert.Throws<ArgumentException>(() => Int4Quantizer.Quantize(source, Int4Options() with { Int4BlockSize = blockSize }));
        Assert.Contains("block size", error.Message);
    }

    internal static QuantizationOptions Int4Options() => new() { Mode = QuantizationMode.Int4 };

    /// <summary>
    /// Each block as decoded: symmetric blocks reproduce their largest-magnitude value exactly and have no zero point;
    /// asymmetric blocks hold 0 exactly and span the block's [min, max] (widened to 0) in 15 steps. Every value inside the
    /// block's grid is within half a step; a value beyond it (the opposite extreme of a symmetric block) lands on its end.
    /// </summary>
    internal static void CheckBlocks(float[] w, DecodedWeight decoded, int blockSize, bool symmetric)
    {
        int k = decoded.K, n = decoded.N;
        for (int j = 0; j < n; j++)
        {
            for (int start = 0; start < k; start += blockSize)
            {
                int end = Math.Min(k, start + blockSize);
                var originals = Enumerable.Range(start, end - start).Select(t => (double)w[t * n + j]).ToArray();
                int first = start * n + j;
                double step = decoded.Steps[first], low = decoded.GridMin[first], high = decoded.GridMax[first];
                if (symmetric)
                {
                    int largest = start + Array.IndexOf(originals, originals.MaxBy(Math.Abs));
                    Assert.Equal(w[largest * n + j], decoded.Values[largest * n + j]);
                    Assert.Equal(originals.Max(Math.Abs) / 8, step, 1e-12);
                }
                else
                {
                    double span = Math.Max(originals.Max(), 0) - Math.Min(originals.Min(), 0);
                    Assert.Equal(span / 15, step, 1e-6 * span);
                    Assert.True(low <= 0 && high >= 0, "0 lies on the grid");
                }
                for (int t = start; t < end; t++)
                {
                    int i = t * n + j;
                    Assert.Equal(step, decoded.Steps[i]);
                    double original = w[i], value = decoded.Values[i];
                    if (original >= low && original <= high)
                        Assert.True(Math.Abs(value - original) <= step / 2 * (1 + 1e-6), $"[{t},{j}] {original} decodes to {value} (step {step})");
                    else
                        Assert.Equal(original < low ? low : high, value);
                }
            }
        }
    }

    /// <summary>The most a block's rounding may move one weight, from the float weights alone, for either symmetric rule (|m|/8 with clipping, |m|/7 without).</summary>
    private static double ElementBound(float[] w, int k, int n, int t, int j, int blockSize, bool symmetric)
    {
        int start = t / blockSize * blockSize, end = Math.Min(k, start + blockSize);
        double min = 0, max = 0;
        for (int r = start; r < end; r++)
        {
            min = Math.Min(min, w[r * n + j]);
            max = Math.Max(max, w[r * n + j]);
        }
        return (symmetric ? Math.Max(max, -min) / 8 : (max - min) / 15 / 2) * (1 + 1e-6);
    }

    internal static float[] RandomWeights(Random random, int k, int n)
    {
        // Roughly normal weights, with a few outliers as trained weights have.
        var w = new float[k * n];
        for (int i = 0; i < w.Length; i++)
        {
            double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
            double normal = Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
            w[i] = (float)(normal * 0.05 * (random.Next(50) == 0 ? 6 : 1));
        }
        return w;
    }

    /// <summary>
    /// The quantized weight of a MatMulNBits or DequantizeLinear node, decoded from the bytes as ONNX
    /// Runtime's contrib op doc (B [N, blocks, bs/2], low nibble first; scales [N, blocks]; packed uint4 zero points,
    /// 8 when absent) and ONNX's DequantizeLinear with int4 (row-major, low nibble first, sign-extended) define it.
    /// </summary>
    internal static DecodedWeight Decode(OnnxModel model, NodeProto node)
    {
        var graph = model.Graph;
        long Attribute(string name) => node.Attribute.Single(a => a.Name == name).I;
        TensorProto Initializer(int input) => graph.Initializer.Single(t => t.Name == node.Input[input]);
        int zeroPointInput = node.OpType == "MatMulNBits" ? 3 : 2;
        bool hasZeroPoints = node.Input.Count > zeroPointInput && node.Input[zeroPointInput].Length > 0;
        float[] scales = MemoryMarshal.Cast<byte, float>(Initializer(zeroPointInput - 1).RawData.Span).ToArray();

        if (node.OpType == "MatMulNBits")
        {
            int k = (int)Attribute("K"), n = (int)Attribute("N"), bs = (int)Attribute("block_size");
            Assert.Equal(4, Attribute("bits"));
            Assert.Equal("com.microsoft", node.Domain);
            Assert.Contains(model.Proto.OpsetImport, o => o.Domain == "com.microsoft" && o.Version == 1);
            int blocks = (k + bs - 1) / bs, zeroPointBytes = (blocks + 1) / 2;
            var b = Initializer(1);
            Assert.Equal([n, blocks, bs / 2], b.Dims);
            Assert.Equal((int)TensorProto.Types.DataType.Uint8, b.DataType);
            Assert.Equal(n * blocks, scales.Length);
            byte[] packed = b.RawData.ToByteArray();
            byte[]? zeroPoints = hasZeroPoints ? Initializer(3).RawData.ToByteArray() : null;
            if (zeroPoints is not null) Assert.Equal(n * zeroPointBytes, zeroPoints.Length);
            return DecodedWeight.Build(k, n, (t, j) =>
            {
                int block = t / bs, within = t % bs;
                int code = Nibble(packed[(j * blocks + block) * (bs / 2) + within / 2], within);
                int zeroPoint = zeroPoints is null ? 8 : Nibble(zeroPoints[j * zeroPointBytes + block / 2], block);
                return (code - zeroPoint, scales[j * blocks + block], -zeroPoint, 15 - zeroPoint);
            }, hasZeroPoints);
        }

        var values = Initializer(0);
        Assert.Equal((int)TensorProto.Types.DataType.Int4, values.DataType);
        Assert.Equal(0, Attribute("axis"));
        int depth = (int)values.Dims[0], columns = (int)values.Dims[1], blockSize = (int)Attribute("block_size");
        byte[] data = values.RawData.ToByteArray();
        byte[]? zero = hasZeroPoints ? Initializer(2).RawData.ToByteArray() : null;
        Assert.Equal((depth + blockSize - 1) / blockSize * columns, scales.Length);
        return DecodedWeight.Build(depth, columns, (t, j) =>
        {
            int index = t * columns + j, parameter = t / blockSize * columns + j;
            int code = SignedNibble(data[index / 2], index), zeroPoint = zero is null ? 0 : SignedNibble(zero[parameter / 2], parameter);
            return (code - zeroPoint, scales[parameter], -8 - zeroPoint, 7 - zeroPoint);
        }, hasZeroPoints);
    }

    private static int Nibble(byte pair, int index) => (index & 1) == 0 ? pair & 0x0F : pair >> 4;

    private static int SignedNibble(byte pair, int index) => (Nibble(pair, index) ^ 8) - 8;

    /// <summary>A decoded [K, N] weight, row-major: the values, each element's step (|scale|) and the ends of its block's grid.</summary>
    internal sealed record DecodedWeight(int K, int N, double[] Values, double[] Steps, double[] GridMin, double[] GridMax, bool HasZeroPoints)
    {
        /// <summary><paramref name="element"/> gives (code - zero point, scale, lowest and highest code - zero point) of one element.</summary>
        public static DecodedWeight Build(int k, int n, Func<int, int, (int Level, float Scale, int Lowest, int Highest)> element, bool hasZeroPoints)
        {
            var values = new double[k * n];
            var steps = new double[k * n];
            var low = new double[k * n];
            var high = new double[k * n];
            for (int t = 0; t < k; t++)
            {
                for (int j = 0; j < n; j++)
                {
                    var (level, scale, lowest, highest) = element(t, j);
                    int i = t * n + j;
                    values[i] = (double)level * scale;
                    steps[i] = Math.Abs((double)scale);
                    low[i] = Math.Min((double)lowest * scale, (double)highest * scale);
                    high[i] = Math.Max((double)lowest * scale, (double)highest * scale);
                }
            }
            return new DecodedWeight(k, n, values, steps, low, high, hasZeroPoints);
        }
    }

    private static double[] Product(double[] a, int m, int k, double[] w, int n)
    {
        var y = new double[m * n];
        for (int i = 0; i < m; i++)
        {
            for (int t = 0; t < k; t++)
            {
                for (int j = 0; j < n; j++) y[i * n + j] += a[i * k + t] * w[t * n + j];
            }
        }
        return y;
    }

    internal static float[] RunOrt(byte[] model, Dictionary<string, (float[] Data, long[] Shape)> feeds, string outputName)
    {
        using var options = new OrtSessionOptions { IntraOpNumThreads = 1 };
        // ORT fuses int4 DequantizeLinear + MatMul into MatMulNBits with int8 activations (accuracy level 4) unless told
        // otherwise; level 0 keeps activations float, as the model asks (about 1% apart otherwise).
        options.AddSessionConfigEntry("session.qdq_matmulnbits_accuracy_level", "0");
        using var session = new InferenceSession(model, options);
        var inputs = feeds.Values.Select(f => OrtValue.CreateTensorValueFromMemory(f.Data, f.Shape)).ToArray();
        try
        {
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, feeds.Keys.ToArray(), inputs, [outputName]);
            return outputs[0].GetTensorDataAsSpan<float>().ToArray();
        }
        finally
        {
            foreach (var input in inputs) input.Dispose();
        }
    }

    private static float[] RunOurs(byte[] model, Dictionary<string, (float[] Data, long[] Shape)> feeds, string outputName)
    {
        using var session = ModelSession.Load(model, "int4.onnx", new SessionOptions { Threads = 1 });
        var inputs = feeds.ToDictionary(f => f.Key, f => Tensor.Create(f.Value.Data, f.Value.Shape.Select(d => (int)d).ToArray()));
        return session.Run(inputs)[outputName].ToArray<float>();
    }

    private static ModelProto Model(long opset, GraphProto graph)
    {
        // IR 10 introduced int4; opset 21 belongs to it.
        var model = new ModelProto { IrVersion = opset >= 21 ? 10 : 8, ProducerName = "test", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        return model;
    }

    private static GraphProto MatMulAdd(int m, int k, int n, float[] w, float[] bias)
    {
        var graph = new GraphProto { Name = "matmul_add" };
        graph.Input.Add(Value("X", m, k));
        graph.Output.Add(Value("Y", m, n));
        graph.Initializer.Add(Floats("W", [k, n], w));
        graph.Initializer.Add(Floats("B", [n], bias));
        graph.Node.Add(Node("MatMul", "mm", ["X", "W"], ["XW"]));
        graph.Node.Add(Node("Add", "add", ["XW", "B"], ["Y"]));
        return graph;
    }

    private static NodeProto Node(string op, string name, string[] inputs, string[] outputs)
    {
        var node = new NodeProto { OpType = op, Name = name };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        return node;
    }

    private static ValueInfoProto Value(string name, params long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (long d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1, Shape = shape } } };
    }

    private static TensorProto Floats(string name, long[] dims, float[] values)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        var t = new TensorProto { Name = name, DataType = 1, RawData = ByteString.CopyFrom(bytes) };
        t.Dims.AddRange(dims);
        return t;
    }
}
