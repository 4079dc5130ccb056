using Google.Protobuf;
using Quantize.Kernels.Models.TensorFlow;
using Quantize.Kernels.Runtime;

namespace Quantize.Kernels.Tests.TensorFlow;

/// <summary>
/// Single TensorFlow ops in handmade graphs, each against a float64 computation written here from TensorFlow's op
/// definitions (NHWC layouts, SAME padding with the odd element after, pools not counting padding, and so on).
/// </summary>
public sealed class TensorFlowOpTests
{
    private readonly GraphDef _graph = new();
    private readonly Random _random = new(17);

    private float[] Values(int count) => Enumerable.Range(0, count).Select(_ => _random.NextSingle() * 4 - 2).ToArray();

    private void Placeholder(string name)
    {
        var node = new NodeDef { Name = name, Op = "Placeholder" };
        node.Attr["dtype"] = new AttrValue { Type = DataType.DtFloat };
        _graph.Node.Add(node);
    }

    private void Const(string name, DataType type, int[] shape, byte[] content)
    {
        var tensor = new TensorProto { Dtype = type, TensorShape = new TensorShapeProto(), TensorContent = ByteString.CopyFrom(content) };
        foreach (int d in shape) tensor.TensorShape.Dim.Add(new TensorShapeProto.Types.Dim { Size = d });
        var node = new NodeDef { Name = name, Op = "Const" };
        node.Attr["dtype"] = new AttrValue { Type = type };
        node.Attr["value"] = new AttrValue { Tensor = tensor };
        _graph.Node.Add(node);
    }

    private void Floats(string name, int[] shape, float[] values) => Const(name, DataType.DtFloat, shape, values.SelectMany(BitConverter.GetBytes).ToArray());

    private void Ints(string name, int[] shape, int[] values) => Const(name, DataType.DtInt32, shape, values.SelectMany(BitConverter.GetBytes).ToArray());

    private NodeDef Op(string name, string op, params string[] inputs)
    {
        var node = new NodeDef { Name = name, Op = op };
        node.Input.AddRange(inputs);
        _graph.Node.Add(node);
        return node;
    }

    private static void Set(NodeDef node, string name, params long[] values) =>
        node.Attr[name] = new AttrValue { List = new AttrValue.Types.ListValue { I = { values } } };

    private static void Set(NodeDef node, string name, string value) => node.Attr[name] = new AttrValue { S = ByteString.CopyFromUtf8(value) };

    private Tensor Run(string fetch, params (string Name, Tensor Value)[] feeds)
    {
        using var session = ModelSession.Create(new GraphDefModel(_graph), new SessionOptions { Threads = 1 });
        return session.Run(feeds.ToDictionary(f => f.Name, f => f.Value), [fetch])[fetch];
    }

    private static void Close(double[] expected, Tensor actual, double tolerance = 1e-5)
    {
        var got = actual.ToArray<float>();
        Assert.Equal(expected.Length, got.Length);
        for (int i = 0; i < got.Length; i++)
            Assert.True(Math.Abs(got[i] - expected[i]) <= tolerance * Math.Max(1, Math.Abs(expected[i])), $"[{i}]: {got[i]} vs {expected[i]}");
    }

    [Theory]
    [InlineData("SAME", 2, 1)]
    [InlineData("VALID", 1, 2)]
    [InlineData("SAME", 1, 1)]
    public void DepthwiseConv2dNative(string padding, int stride, int multiplier)
    {
        const int n = 2, h = 7, w = 6, c = 3, kh = 3, kw = 2;
        var x = Values(n * h * w * c);
        var f = Values(kh * kw * c * multiplier);
        Placeholder("x");
        Floats("f", [kh, kw, c, multiplier], f);
        var node = Op("y", "DepthwiseConv2dNative", "x", "f");
        Set(node, "strides", 1, stride, stride, 1);
        Set(node, "padding", padding);
        var y = Run("y", ("x", Tensor.Create(x, n, h, w, c)));

        bool same = padding == "SAME";
        int oh = same ? (h + stride - 1) / stride : (h - kh) / stride + 1, ow = same ? (w + stride - 1) / stride : (w - kw) / stride + 1;
        int padY = same ? Math.Max((oh - 1) * stride + kh - h, 0) / 2 : 0, padX = same ? Math.Max((ow - 1) * stride + kw - w, 0) / 2 : 0;
        Assert.Equal([n, oh, ow, c * multiplier], y.Shape.ToArray());
        var expected = new double[n * oh * ow * c * multiplier];
        for (int b = 0; b < n; b++)
        for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
        for (int ch = 0; ch < c; ch++)
        for (int m = 0; m < multiplier; m++)
        {
            double sum = 0;
            for (int ky = 0; ky < kh; ky++)
            for (int kx = 0; kx < kw; kx++)
            {
                int iy = oy * stride - padY + ky, ix = ox * stride - padX + kx;
                if (iy >= 0 && iy < h && ix >= 0 && ix < w) sum += x[((b * h + iy) * w + ix) * c + ch] * (double)f[((ky * kw + kx) * c + ch) * multiplier + m];
            }
            expected[((b * oh + oy) * ow + ox) * c * multiplier + ch * multiplier + m] = sum;
        }
        Close(expected, y);
    }

    [Theory]
    [InlineData("AvgPool", "SAME")]
    [InlineData("AvgPool", "VALID")]
    [InlineData("MaxPool", "SAME")]
    public void Pools(string op, string padding)
    {
        const int n = 1, h = 5, w = 4, c = 2, k = 2, s = 2;
        var x = Values(n * h * w * c);
        Placeholder("x");
        var node = Op("y", op, "x");
        Set(node, "ksize", 1, k, k, 1);
        Set(node, "strides", 1, s, s, 1);
        Set(node, "padding", padding);
        var y = Run("y", ("x", Tensor.Create(x, n, h, w, c)));
        bool same = padding == "SAME";
        int oh = same ? (h + s - 1) / s : (h - k) / s + 1, ow = same ? (w + s - 1) / s : (w - k) / s + 1;
        int padY = same ? Math.Max((oh - 1) * s + k - h, 0) / 2 : 0, padX = same ? Math.Max((ow - 1) * s + k - w, 0) / 2 : 0;
        var expected = new List<double>();
        for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
        for (int ch = 0; ch < c; ch++)
        {
            var window = new List<double>();
            for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++)
            {
                int iy = oy * s - padY + ky, ix = ox * s - padX + kx;
                if (iy >= 0 && iy < h && ix >= 0 && ix < w) window.Add(x[(iy * w + ix) * c + ch]);
            }
            expected.Add(op == "MaxPool" ? window.Max() : window.Average()); // padding is not counted
        }
        Close(expected.ToArray(), y);
    }

    [Fact]
    public void FusedBatchNormOnTheChannelAxis()
    {
        const int c = 3;
        var x = Values(2 * 2 * 2 * c);
        float[] scale = [0.5f, 2f, -1f], offset = [0.1f, -0.2f, 0.3f], mean = [0.2f, -0.4f, 1f], variance = [1f, 0.25f, 4f];
        Placeholder("x");
        Floats("scale", [c], scale);
        Floats("offset", [c], offset);
        Floats("mean", [c], mean);
        Floats("variance", [c], variance);
        var node = Op("y", "FusedBatchNormV3", "x", "scale", "offset", "mean", "variance");
        node.Attr["epsilon"] = new AttrValue { F = 0.001f };
        node.Attr["is_training"] = new AttrValue { B = false };
        var y = Run("y", ("x", Tensor.Create(x, 2, 2, 2, c)));
        Close(x.Select((v, i) => (v - mean[i % c]) / Math.Sqrt(variance[i % c] + 0.001) * scale[i % c] + offset[i % c]).ToArray(), y);
    }

    [Fact]
    public void ElementwiseOps()
    {
        var a = Values(12);
        var b = Values(4).Select(v => v + 3f).ToArray(); // positive: a divisor and a square root's argument
        Placeholder("a");
        Floats("b", [4], b);
        Op("max", "Maximum", "a", "b");
        Op("min", "Minimum", "a", "b");
        Op("div", "RealDiv", "a", "b");
        Op("sub", "Sub", "a", "b");
        Op("relu6", "Relu6", "a");
        Op("rsqrt", "Rsqrt", "b");
        var feed = ("a", Tensor.Create(a.Select(v => v * 4).ToArray(), 3, 4));
        var scaled = a.Select(v => (double)v * 4).ToArray();
        Close(scaled.Select((v, i) => Math.Max(v, b[i % 4])).ToArray(), Run("max", feed));
        Close(scaled.Select((v, i) => Math.Min(v, b[i % 4])).ToArray(), Run("min", feed));
        Close(scaled.Select((v, i) => v / b[i % 4]).ToArray(), Run("div", feed));
        Close(scaled.Select((v, i) => v - b[i % 4]).ToArray(), Run("sub", feed));
        Close(scaled.Select(v => Math.Clamp(v, 0, 6)).ToArray(), Run("relu6", feed));
        Close(b.Select(v => 1 / Math.Sqrt(v)).ToArray(), Run("rsqrt"));
    }

    [Theory]
    [InlineData("Mean", false)]
    [InlineData("Sum", true)]
    public void Reductions(string op, bool keepDims)
    {
        var x = Values(2 * 3 * 4);
        Placeholder("x");
        Ints("axes", [2], [0, 2]);
        var node = Op("y", op, "x", "axes");
        node.Attr["keep_dims"] = new AttrValue { B = keepDims };
        var y = Run("y", ("x", Tensor.Create(x, 2, 3, 4)));
        Assert.Equal(keepDims ? [1, 3, 1] : new[] { 3 }, y.Shape.ToArray());
        var expected = Enumerable.Range(0, 3).Select(j =>
        {
            double sum = 0;
            for (int i = 0; i < 2; i++) for (int k = 0; k < 4; k++) sum += x[(i * 3 + j) * 4 + k];
            return op == "Mean" ? sum / 8 : sum;
        }).ToArray();
        Close(expected, y);
    }

    [Fact]
    public void PadTransposedMatMulAndCast()
    {
        var x = Values(2 * 3);
        var w = Values(4 * 3);
        Placeholder("x");
        Floats("w", [4, 3], w);
        Ints("paddings", [2, 2], [1, 0, 0, 2]);
        Op("pad", "Pad", "x", "paddings");
        var matmul = Op("mm", "MatMul", "x", "w");
        matmul.Attr["transpose_b"] = new AttrValue { B = true };
        var cast = Op("int", "Cast", "x");
        cast.Attr["DstT"] = new AttrValue { Type = DataType.DtInt32 };
        var feed = ("x", Tensor.Create(x, 2, 3));

        var pad = Run("pad", feed);
        Assert.Equal([3, 5], pad.Shape.ToArray());
        var expected = new double[15];
        for (int i = 0; i < 2; i++) for (int j = 0; j < 3; j++) expected[(i + 1) * 5 + j] = x[i * 3 + j];
        Close(expected, pad);

        var product = new double[2 * 4];
        for (int i = 0; i < 2; i++) for (int j = 0; j < 4; j++) for (int k = 0; k < 3; k++) product[i * 4 + j] += x[i * 3 + k] * (double)w[j * 3 + k];
        Close(product, Run("mm", feed));

        Assert.Equal(x.Select(v => (int)v), Run("int", feed).ToArray<int>()); // toward zero, as TensorFlow's Cast
    }

    [Fact]
    public void StridedSliceWithMasks()
    {
        var x = Values(4 * 5);
        Placeholder("x");
        Ints("begin", [2], [1, -1]);
        Ints("end", [2], [3, 0]);
        Ints("strides", [2], [1, -2]);
        var node = Op("y", "StridedSlice", "x", "begin", "end", "strides");
        node.Attr["end_mask"] = new AttrValue { I = 2 };      // axis 1 runs to its start
        node.Attr["shrink_axis_mask"] = new AttrValue { I = 0 };
        var y = Run("y", ("x", Tensor.Create(x, 4, 5)));
        Assert.Equal([2, 3], y.Shape.ToArray());
        Close(new[] { 1, 2 }.SelectMany(r => new[] { 4, 2, 0 }.Select(col => (double)x[r * 5 + col])).ToArray(), y);

        Ints("b2", [2], [2, 0]);
        Ints("e2", [2], [3, 5]);
        Ints("s2", [2], [1, 1]);
        var shrink = Op("row", "StridedSlice", "x", "b2", "e2", "s2");
        shrink.Attr["shrink_axis_mask"] = new AttrValue { I = 1 };
        var row = Run("row", ("x", Tensor.Create(x, 4, 5)));
        Assert.Equal([5], row.Shape.ToArray());
        Close(Enumerable.Range(0, 5).Select(col => (double)x[10 + col]).ToArray(), row);
    }

    /// <summary>The shape and array ops of the unrolled LSTM: Split, Unpack, Pack, ConcatV2, ExpandDims, Fill, Shape, Squeeze, Sigmoid, Tanh.</summary>
    [Fact]
    public void ArrayOpsOfTheLstm()
    {
        var x = Values(2 * 6);
        Placeholder("x");
        Ints("axis1", [], [1]);
        var split = Op("split", "Split", "axis1", "x");
        split.Attr["num_split"] = new AttrValue { I = 3 };
        var unpack = Op("rows", "Unpack", "x");
        unpack.Attr["num"] = new AttrValue { I = 2 };
        unpack.Attr["axis"] = new AttrValue { I = 0 };
        var pack = Op("packed", "Pack", "rows:1", "rows");
        pack.Attr["axis"] = new AttrValue { I = 1 };
        Ints("axisLast", [], [-1]);
        Op("concat", "ConcatV2", "split:2", "split", "axisLast");
        Ints("zero", [], [0]);
        Op("expanded", "ExpandDims", "x", "zero");
        Op("shape", "Shape", "x");
        Floats("seven", [], [7f]);
        Op("filled", "Fill", "shape", "seven");
        var squeeze = Op("squeezed", "Squeeze", "expanded");
        Set(squeeze, "squeeze_dims", 0);
        Op("sig", "Sigmoid", "x");
        Op("tanh", "Tanh", "x");
        var feed = ("x:0", Tensor.Create(x, 2, 6));
        double At(int r, int c) => x[r * 6 + c];

        var part = Run("split:1", feed);
        Assert.Equal([2, 2], part.Shape.ToArray());
        Close([At(0, 2), At(0, 3), At(1, 2), At(1, 3)], part);
        Close(Enumerable.Range(0, 6).Select(c => At(1, c)).ToArray(), Run("rows:1", feed));
        var packed = Run("packed", feed);
        Assert.Equal([6, 2], packed.Shape.ToArray());
        Close(Enumerable.Range(0, 6).SelectMany(c => new[] { At(1, c), At(0, c) }).ToArray(), packed);
        var concat = Run("concat", feed);
        Assert.Equal([2, 4], concat.Shape.ToArray());
        Close(new[] { 0, 1 }.SelectMany(r => new[] { At(r, 4), At(r, 5), At(r, 0), At(r, 1) }).ToArray(), concat);
        Assert.Equal([1, 2, 6], Run("expanded", feed).Shape.ToArray());
        Assert.Equal([2, 6], Run("shape", feed).ToArray<int>());
        Close(Enumerable.Repeat(7.0, 12).ToArray(), Run("filled", feed));
        Assert.Equal([2, 6], Run("squeezed", feed).Shape.ToArray());
        Close(x.Select(v => 1 / (1 + Math.Exp(-v))).ToArray(), Run("sig", feed));
        Close(x.Select(v => Math.Tanh(v)).ToArray(), Run("tanh", feed));
    }
}
