using Google.Protobuf;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;

namespace Quantize.Kernels.Tests.Runtime;

/// <summary>
/// Conv's lowered GEMM path (patches, pointwise, parallel chunks, weights packed at load or per run) against the
/// direct definition on random odd shapes, and identical results for every thread count; MaxPool's branch-free
/// float path against its generic twin.
/// </summary>
public class ConvolutionTests
{
    private sealed record ConvCase(string Name, int[] Input, int[] Weights, int Group, int[] Strides, int[] Pads, int[] Dilations);

    private static readonly ConvCase[] All =
    [
        new("3x3 pad 1", [1, 5, 9, 11], [7, 5, 3, 3], 1, [1, 1], [1, 1, 1, 1], [1, 1]),
        new("1x1 pointwise", [2, 16, 13, 7], [20, 16, 1, 1], 1, [1, 1], [0, 0, 0, 0], [1, 1]),
        new("1x1 stride 2", [1, 12, 9, 9], [10, 12, 1, 1], 1, [2, 2], [0, 0, 0, 0], [1, 1]),
        new("7x7 stride 2 asymmetric pads", [1, 3, 30, 27], [16, 3, 7, 7], 1, [2, 2], [3, 3, 2, 2], [1, 1]),
        new("grouped dilated", [1, 6, 12, 10], [4, 3, 3, 2], 2, [1, 2], [2, 0, 1, 1], [2, 3]),
        new("depthwise with multiplier", [2, 4, 8, 9], [8, 1, 3, 3], 4, [2, 1], [1, 1, 1, 1], [1, 1]),
        new("1-D", [2, 3, 17], [5, 3, 4], 1, [3], [2, 1], [2]),
        new("3-D", [1, 2, 5, 6, 7], [3, 2, 2, 3, 2], 1, [1, 2, 1], [1, 0, 1, 0, 1, 1], [2, 1, 1]),
        new("large enough for parallel chunks", [1, 32, 42, 40], [24, 32, 3, 3], 1, [1, 1], [0, 0, 0, 0], [1, 1]),
        new("3x3 pad 1, rows longer and shorter than a panel", [1, 4, 6, 37], [5, 4, 3, 3], 1, [1, 1], [1, 1, 1, 1], [1, 1]),
        new("3x3 stride 2 pad 1, wide rows", [1, 3, 9, 45], [6, 3, 3, 3], 1, [2, 2], [1, 1, 1, 1], [1, 1]),
        new("5x5 stride 2 dilated, pads past the row", [1, 2, 11, 40], [3, 2, 5, 5], 1, [2, 2], [4, 3, 4, 5], [1, 2]),
        new("3x3 asymmetric pads on a map large enough for Winograd", [2, 6, 31, 26], [9, 6, 3, 3], 1, [1, 1], [1, 2, 0, 1], [1, 1]),
    ];

    public static TheoryData<string> Cases() => new(All.Select(c => c.Name));

    [Theory]
    [MemberData(nameof(Cases))]
    public void Lowered_conv_matches_the_direct_definition_for_every_thread_count(string name)
    {
        var c = All.Single(c => c.Name == name);
        var random = new Random(c.Name.Length * 7919 + c.Input.Sum());
        float[] x = Random(random, c.Input);
        float[] w = Random(random, c.Weights);
        float[] b = Random(random, [c.Weights[0]]);
        var (expected, shape) = Direct(c, x, w, b);
        foreach (bool constantWeights in new[] { true, false })
        {
            float[]? first = null;
            foreach (int threads in new[] { 1, 2, 3 })
            {
                var y = RunConv(c, x, w, b, constantWeights, threads);
                Assert.Equal(shape, y.Shape.ToArray());
                var actual = y.ToArray<float>();
                for (int i = 0; i < expected.Length; i++)
                    Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-4 * (1 + Math.Abs(expected[i])), $"element {i}: {actual[i]} vs {expected[i]}");
                if (first is null) first = actual;
                else Assert.Equal(first, actual);
            }
        }
    }

    [Fact]
    public unsafe void The_bordered_patch_packer_writes_the_bytes_of_the_general_one()
    {
        if (!System.Runtime.Intrinsics.X86.Avx2.IsSupported) return; // only the general packer runs then
        var random = new Random(12);
        for (int trial = 0; trial < 400; trial++)
        {
            var g = Quantize.Kernels.Runtime.Operators.WindowGeometry.Identity(2);
            int channels = random.Next(1, 4);
            g.Input[1] = random.Next(1, 20);
            g.Input[2] = random.Next(1, 40);
            g.Kernel[1] = random.Next(1, 4);
            g.Kernel[2] = random.Next(1, 6);
            g.Stride[1] = random.Next(1, 3);
            g.Stride[2] = random.Next(1, 3);
            g.Dilation[1] = random.Next(1, 3);
            g.Dilation[2] = random.Next(1, 3);
            for (int a = 1; a < 3; a++)
            {
                g.PadBegin[a] = random.Next(0, 3);
                g.PadEnd[a] = random.Next(0, 3);
                g.Output[a] = (g.Input[a] + g.PadBegin[a] + g.PadEnd[a] - ((g.Kernel[a] - 1) * g.Dilation[a] + 1)) / g.Stride[a] + 1;
            }
            if (g.Output[1] < 1 || g.Output[2] < 1) continue;
            int pixels = g.Output[1] * g.Output[2];
            int first = random.Next(0, pixels), count = random.Next(1, pixels - first + 1);
            bool ones = random.Next(2) == 0;
            int depth = channels * g.Kernel[1] * g.Kernel[2] + (ones ? 1 : 0);
            int length = (count + 15) / 16 * 16 * depth;
            float[] image = Enumerable.Range(0, channels * g.Input[1] * g.Input[2]).Select(_ => random.NextSingle() + 1).ToArray();
            var fast = Enumerable.Repeat(float.NaN, length + 16).ToArray();
            var general = Enumerable.Repeat(float.NaN, length + 16).ToArray();
            Assert.True(Quantize.Kernels.Runtime.Operators.ConvolutionPanelsPadded.Supports(g));
            fixed (float* x = image, f = fast, r = general)
            {
                Quantize.Kernels.Runtime.Operators.ConvolutionPanelsPadded.Pack(g, x, channels, first, count, f, ones);
                Quantize.Kernels.Runtime.Operators.ConvolutionPanels.Pack(g, x, channels, first, count, r, ones);
            }
            for (int i = 0; i < general.Length; i++)
                Assert.True(general[i].Equals(fast[i]), $"at {i}: {fast[i]} vs {general[i]}; in {g.Input[1]}x{g.Input[2]} k {g.Kernel[1]}x{g.Kernel[2]} s {g.Stride[1]},{g.Stride[2]} d {g.Dilation[1]},{g.Dilation[2]} pads {g.PadBegin[1]},{g.PadBegin[2]},{g.PadEnd[1]},{g.PadEnd[2]} c {channels} first {first} count {count} ones {ones}");
        }
    }

    [Fact]
    public unsafe void The_vector_patch_segments_equal_their_scalar_twin()
    {
        if (!System.Runtime.Intrinsics.X86.Avx2.IsSupported) return; // the twin is what runs then
        var random = new Random(9);
        for (int trial = 0; trial < 3000; trial++)
        {
            int width = random.Next(1, 60), stride = random.Next(1, 3), length = random.Next(1, 17), iw0 = random.Next(-6, width + 4);
            float[] line = Enumerable.Range(0, width).Select(_ => random.NextSingle() + 1).ToArray();
            var fast = new float[length + 8];
            var twin = new float[length + 8];
            Array.Fill(fast, float.NaN);
            Array.Fill(twin, float.NaN);
            fixed (float* l = line, f = fast, t = twin)
            {
                Quantize.Kernels.Runtime.Operators.ConvolutionPanels.SegmentAvx2(l, width, iw0, stride, f, length);
                Quantize.Kernels.Runtime.Operators.ConvolutionPanels.Segment(l, width, iw0, stride, t, length);
            }
            Assert.Equal(twin, fast); // including the NaNs past the segment: nothing written beyond it
        }
    }

    [Theory]
    [InlineData(11, 9, 2, 3, 2, 1, 1, 2, 1, 0)]  // narrow rows: the scalar path
    [InlineData(9, 40, 3, 3, 2, 2, 1, 1, 1, 1)]  // ResNet's 3x3 stride 2 pad 1 on wide rows: eight outputs at a time
    [InlineData(6, 37, 2, 3, 1, 1, 1, 2, 0, 1)]  // stride 1, dilated
    [InlineData(12, 45, 3, 2, 1, 2, 1, 1, 2, 1)]  // by rows: stride 2 along rows, pads wider than the window's overhang
    [InlineData(5, 21, 3, 3, 2, 1, 1, 1, 1, 1)]  // by rows: stride 1 along rows, a last group of fewer than eight outputs
    public void Float_max_pool_matches_the_generic_path_with_nan(int height, int width, int kh, int kw, int sh, int sw, int dh, int dw, int padTop, int padLeft)
    {
        var random = new Random(3);
        int[] shape = [2, 3, height, width];
        float[] x = Random(random, shape);
        for (int i = 0; i < x.Length; i += 7) x[i] = float.NaN;
        foreach (int i in new[] { 1, 3, 10, 12 }) x[i] = float.NaN;
        // The window of output (2, 9) all NaN, in the middle of a row (the vector path's region when rows are wide).
        int h0 = 2 * sh - padTop, w0 = 9 * sw - padLeft;
        bool inside = h0 >= 0 && h0 + (kh - 1) * dh < height && w0 >= 0 && w0 + (kw - 1) * dw < width;
        for (int r = 0; r < kh && inside; r++)
        {
            for (int c = 0; c < kw; c++) x[(h0 + r * dh) * width + w0 + c * dw] = float.NaN;
        }
        var attributes = new[]
        {
            Ints("kernel_shape", kh, kw), Ints("strides", sh, sw), Ints("pads", padTop, padLeft, 1, 0), Ints("dilations", dh, dw),
            new AttributeProto { Name = "ceil_mode", Type = AttributeProto.Types.AttributeType.Int, I = 1 },
        };
        var fast = Run(Model("MaxPool", attributes, ["x"], [], ["y"]), new() { ["x"] = Tensor.Create(x, shape) }, 1)["y"].ToArray<float>();
        var generic = Run(Model("MaxPool", attributes, ["x"], [], ["y", "i"]), new() { ["x"] = Tensor.Create(x, shape) }, 1)["y"].ToArray<float>();
        Assert.Equal(generic, fast);
        int outW = (int)Math.Ceiling((width + padLeft - ((kw - 1) * dw + 1)) / (double)sw) + 1;
        if (inside) Assert.True(float.IsNaN(fast[2 * outW + 9]), "the all-NaN window gives NaN");
    }

    private static Tensor RunConv(ConvCase c, float[] x, float[] w, float[] b, bool constantWeights, int threads)
    {
        var attributes = new[] { Ints("strides", c.Strides), Ints("pads", c.Pads), Ints("dilations", c.Dilations),
            new AttributeProto { Name = "group", Type = AttributeProto.Types.AttributeType.Int, I = c.Group } };
        var initializers = new List<TensorProto> { Initializer("b", b, [b.Length]) };
        var inputs = new Dictionary<string, Tensor> { ["x"] = Tensor.Create(x, c.Input) };
        if (constantWeights) initializers.Add(Initializer("w", w, c.Weights));
        else inputs["w"] = Tensor.Create(w, c.Weights);
        var model = Model("Conv", attributes, constantWeights ? ["x"] : ["x", "w"], initializers, ["y"], nodeInputs: ["x", "w", "b"]);
        return Run(model, inputs, threads)["y"];
    }

    /// <summary>Conv as ONNX defines it, one output element at a time in float64.</summary>
    private static (float[] Values, int[] Shape) Direct(ConvCase c, float[] x, float[] w, float[] b)
    {
        int rank = c.Input.Length - 2, lead = 3 - rank;
        int[] In(int[] v, int fill) => [.. Enumerable.Repeat(fill, lead), .. v];
        int[] input = In(c.Input[2..], 1), kernel = In(c.Weights[2..], 1), stride = In(c.Strides, 1), dilation = In(c.Dilations, 1);
        int[] begin = In(c.Pads[..rank], 0), end = In(c.Pads[rank..], 0);
        var output = Enumerable.Range(0, 3).Select(a => (input[a] + begin[a] + end[a] - ((kernel[a] - 1) * dilation[a] + 1)) / stride[a] + 1).ToArray();
        int n = c.Input[0], channels = c.Input[1], m = c.Weights[0], cg = c.Weights[1], mg = m / c.Group;
        var y = new float[n * m * output[0] * output[1] * output[2]];
        int o = 0;
        for (int image = 0; image < n; image++)
        for (int oc = 0; oc < m; oc++)
        for (int od = 0; od < output[0]; od++)
        for (int oh = 0; oh < output[1]; oh++)
        for (int ow = 0; ow < output[2]; ow++)
        {
            double sum = b[oc];
            for (int ic = 0; ic < cg; ic++)
            for (int kd = 0; kd < kernel[0]; kd++)
            for (int kh = 0; kh < kernel[1]; kh++)
            for (int kw = 0; kw < kernel[2]; kw++)
            {
                int id = od * stride[0] - begin[0] + kd * dilation[0], ih = oh * stride[1] - begin[1] + kh * dilation[1], iw = ow * stride[2] - begin[2] + kw * dilation[2];
                if (id < 0 || id >= input[0] || ih < 0 || ih >= input[1] || iw < 0 || iw >= input[2]) continue;
                int channel = oc / mg * cg + ic;
                sum += (double)x[(((image * channels + channel) * input[0] + id) * input[1] + ih) * input[2] + iw]
                    * w[(((oc * cg + ic) * kernel[0] + kd) * kernel[1] + kh) * kernel[2] + kw];
            }
            y[o++] = (float)sum;
        }
        return (y, [n, m, .. output[lead..]]);
    }

    private static float[] Random(Random random, int[] shape) =>
        Enumerable.Range(0, shape.Aggregate(1, (a, d) => a * d)).Select(_ => random.NextSingle() * 2 - 1).ToArray();

    private static AttributeProto Ints(string name, params int[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values.Select(v => (long)v));
        return attribute;
    }

    private static TensorProto Initializer(string name, float[] values, int[] shape)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        tensor.Dims.AddRange(shape.Select(d => (long)d));
        tensor.FloatData.AddRange(values);
        return tensor;
    }

    private static OnnxModel Model(string op, AttributeProto[] attributes, string[] graphInputs, IEnumerable<TensorProto> initializers, string[] outputs, string[]? nodeInputs = null)
    {
        var floatType = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float } };
        var node = new NodeProto { OpType = op, Name = op.ToLowerInvariant() };
        node.Input.AddRange(nodeInputs ?? graphInputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        var graph = new GraphProto { Name = op, Node = { node } };
        graph.Initializer.AddRange(initializers);
        graph.Input.AddRange(graphInputs.Select(i => new ValueInfoProto { Name = i, Type = floatType }));
        graph.Output.AddRange(outputs.Select(o => new ValueInfoProto { Name = o, Type = o == "i"
            ? new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Int64 } } : floatType }));
        var proto = new ModelProto { IrVersion = 8, OpsetImport = { new OperatorSetIdProto { Domain = "", Version = 17 } }, Graph = graph };
        return OnnxModel.Load(proto.ToByteArray(), op + ".onnx");
    }

    private static IReadOnlyDictionary<string, Tensor> Run(OnnxModel model, Dictionary<string, Tensor> inputs, int threads) =>
        ModelSession.Create(model, new SessionOptions { Threads = threads, FoldConstants = false }).Run(inputs);

    [Theory]
    [InlineData(196, 2)]
    [InlineData(49, 2)]
    [InlineData(784, 4)]
    [InlineData(3136, 8)]
    [InlineData(12544, 7)]
    [InlineData(5, 2)]
    public void Pixel_chunks_tile_the_image_in_whole_panels_shared_evenly(int pixels, int chunks)
    {
        const int width = Quantize.Kernels.Runtime.Operators.ConvolutionPanels.PanelWidth;
        int next = 0;
        var panelCounts = new List<int>();
        for (int chunk = 0; chunk < chunks; chunk++)
        {
            var (first, count) = Quantize.Kernels.Runtime.Operators.ConvolutionPanels.ChunkRange(pixels, chunks, chunk);
            Assert.Equal(next, first);
            Assert.Equal(0, first % width);
            next = first + count;
            panelCounts.Add((count + width - 1) / width);
        }
        Assert.Equal(pixels, next);
        Assert.True(panelCounts.Max() - panelCounts.Min() <= 1, string.Join(",", panelCounts));
    }
}
