using Quantize.Kernels.Runtime;
using DataType = Quantize.Kernels.Models.Onnx.TensorProto.Types.DataType;
using SessionOptions = Quantize.Kernels.Runtime.SessionOptions;
using Tensor = Quantize.Kernels.Runtime.Tensor;

namespace Quantize.Kernels.Tests.Runtime;

/// <summary>
/// ConvInteger on the lowered int8 GEMM equals a direct 64-bit loop over the definition, <c>sum (x - zx)(w - zw[m])</c>,
/// for groups, strides, dilations, asymmetric pads, 1-D to 3-D windows, int8 and uint8 operands, per-channel weight zero
/// points, weights constant (packed at load) or fed at run time, on 1 and 2 threads.
/// </summary>
public class ConvIntegerTests
{
    public static TheoryData<string> Cases() => new()
    {
        "2d: n2 c4 m6 9x7 k3x3 g2 s2x1 d1x2 p1,0,2,1 x=u8/3 w=i8 per-channel const",
        "2d: n1 c3 m8 12x12 k7x7 g1 s2x2 d1x1 p3,3,3,3 x=u8/114 w=i8 per-channel const",
        "2d: n1 c16 m32 10x10 k3x3 g1 s1x1 d1x1 p1,1,1,1 x=u8/0 w=i8 per-channel const",
        // Enough work for chunks on both threads (the second chunk starts past pixel 0).
        "2d: n2 c32 m20 20x20 k3x3 g1 s1x1 d1x1 p1,1,1,1 x=u8/0 w=i8 per-channel const",
        "2d: n1 c8 m8 6x6 k3x3 g8 s1x1 d1x1 p1,1,1,1 x=i8/-5 w=i8 per-channel const",
        "2d: n1 c6 m4 8x5 k1x1 g1 s1x1 d1x1 p0,0,0,0 x=u8/200 w=u8 per-tensor const",
        "2d: n1 c6 m4 8x5 k2x3 g2 s1x2 d2x1 p0,1,1,0 x=i8/0 w=u8 per-channel input",
        "1d: n2 c5 m3 17 k4 g1 s3 d2 p2,1 x=u8/7 w=i8 per-tensor const",
        "3d: n1 c2 m4 4x5x3 k2x3x2 g2 s1x2x1 d1x1x2 p1,0,1,0,1,1 x=u8/1 w=i8 per-channel const",
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Equals_the_definition(string spec)
    {
        var c = Parse(spec);
        var random = new Random(spec.GetHashCode(StringComparison.Ordinal) & 0x7fffffff);
        int cg = c.Channels / c.Group;
        int[] xShape = [c.Batch, c.Channels, .. c.Input];
        int[] wShape = [c.Outputs, cg, .. c.Kernel];
        int[] x = Enumerable.Range(0, xShape.Aggregate(1, (a, b) => a * b)).Select(_ => c.SignedX ? random.Next(-128, 128) : random.Next(256)).ToArray();
        int[] w = Enumerable.Range(0, wShape.Aggregate(1, (a, b) => a * b)).Select(_ => c.SignedW ? random.Next(-128, 128) : random.Next(256)).ToArray();
        int[] zw = c.PerChannel
            ? Enumerable.Range(0, c.Outputs).Select(_ => c.SignedW ? random.Next(-3, 4) : random.Next(120, 136)).ToArray()
            : [c.SignedW ? 1 : 128];

        var builder = new QdqModelBuilder();
        var xType = c.SignedX ? DataType.Int8 : DataType.Uint8;
        var wType = c.SignedW ? DataType.Int8 : DataType.Uint8;
        builder.Input("X", xType, xShape.Select(d => (long)d).ToArray());
        string weights = "W";
        if (c.ConstantWeights) weights = builder.Bytes("w", wShape.Select(d => (long)d).ToArray(), w, c.SignedW);
        else builder.Input("W", wType, wShape.Select(d => (long)d).ToArray());
        string zx = builder.ZeroPoint("zx", c.ZeroPointX, c.SignedX);
        string zwName = builder.Bytes("zw", c.PerChannel ? [c.Outputs] : [], zw, c.SignedW);
        builder.Node("ConvInteger", ["X", weights, zx, zwName], "Y",
            QdqModelBuilder.Ints("strides", c.Strides.Select(v => (long)v).ToArray()),
            QdqModelBuilder.Ints("dilations", c.Dilations.Select(v => (long)v).ToArray()),
            QdqModelBuilder.Ints("pads", c.Pads.Select(v => (long)v).ToArray()),
            QdqModelBuilder.Int("group", c.Group));
        builder.Output("Y", DataType.Int32);
        byte[] model = builder.Build(opset: 10);

        var expected = Reference(c, x, w, zw);
        foreach (int threads in new[] { 1, 2 })
        {
            using var session = ModelSession.Load(model, "convinteger.onnx", new SessionOptions { Threads = threads });
            var feeds = new Dictionary<string, Tensor> { ["X"] = Bytes(x, c.SignedX, xShape) };
            if (!c.ConstantWeights) feeds["W"] = Bytes(w, c.SignedW, wShape);
            var y = session.Run(feeds)["Y"];
            Assert.Equal(expected.Shape, y.Shape.ToArray());
            Assert.Equal(expected.Values, y.ToArray<int>());
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void QLinearConv_requantizes_the_same_sums(string spec)
    {
        var c = Parse(spec);
        // QLinearConv's weights are always initializers here (the "input" case too); the lowering is ConvInteger's.
        var random = new Random(spec.Length * 7 + 1);
        int cg = c.Channels / c.Group;
        int[] xShape = [c.Batch, c.Channels, .. c.Input];
        int[] wShape = [c.Outputs, cg, .. c.Kernel];
        int[] x = Enumerable.Range(0, xShape.Aggregate(1, (a, b) => a * b)).Select(_ => c.SignedX ? random.Next(-128, 128) : random.Next(256)).ToArray();
        int[] w = Enumerable.Range(0, wShape.Aggregate(1, (a, b) => a * b)).Select(_ => c.SignedW ? random.Next(-128, 128) : random.Next(256)).ToArray();
        int[] zw = c.PerChannel ? Enumerable.Range(0, c.Outputs).Select(_ => c.SignedW ? 0 : random.Next(120, 136)).ToArray() : [c.SignedW ? 0 : 128];
        float sx = 0.02f;
        float[] sw = Enumerable.Range(0, zw.Length).Select(_ => 0.001f + random.NextSingle() * 0.004f).ToArray();
        int[] bias = Enumerable.Range(0, c.Outputs).Select(_ => random.Next(-5000, 5000)).ToArray();
        int zy = c.SignedX ? 3 : 120;
        var sums = Reference(c, x, w, zw);
        int outSize = sums.Values.Length / (c.Batch * c.Outputs);
        // y's scale puts the largest result about 100 steps from the zero point: outputs spread, a few clip.
        float sy = (float)(sums.Values.Select((sum, i) => Math.Abs((double)sum + bias[i / outSize % c.Outputs])).Max() * sx * sw.Max() / 100);

        var builder = new QdqModelBuilder();
        builder.Input("X", c.SignedX ? DataType.Int8 : DataType.Uint8, xShape.Select(d => (long)d).ToArray());
        long[] perChannel = c.PerChannel ? [c.Outputs] : [];
        builder.Node("QLinearConv",
            ["X", builder.Scalar("sx", sx), builder.ZeroPoint("zx", c.ZeroPointX, c.SignedX),
             builder.Bytes("w", wShape.Select(d => (long)d).ToArray(), w, c.SignedW), builder.Floats("sw", perChannel, sw), builder.Bytes("zw", perChannel, zw, c.SignedW),
             builder.Scalar("sy", sy), builder.ZeroPoint("zy", zy, c.SignedX), builder.Int32s("bias", [c.Outputs], bias)],
            "Y",
            QdqModelBuilder.Ints("strides", c.Strides.Select(v => (long)v).ToArray()),
            QdqModelBuilder.Ints("dilations", c.Dilations.Select(v => (long)v).ToArray()),
            QdqModelBuilder.Ints("pads", c.Pads.Select(v => (long)v).ToArray()),
            QdqModelBuilder.Int("group", c.Group));
        builder.Output("Y", c.SignedX ? DataType.Int8 : DataType.Uint8);
        byte[] model = builder.Build(opset: 10);

        var expected = sums.Values.Select((sum, i) =>
        {
            int m = i / outSize % c.Outputs;
            float scale = sx * sw[sw.Length == 1 ? 0 : m] / sy;
            double value = Math.Round(Math.Clamp((sum + bias[m]) * (double)scale + zy, c.SignedX ? -128 : 0, c.SignedX ? 127 : 255), MidpointRounding.ToEven);
            return (int)value;
        }).ToArray();
        Assert.True(expected.Distinct().Count() >= Math.Min(20, expected.Length / 3), "the outputs should spread over many steps");
        foreach (int threads in new[] { 1, 2 })
        {
            using var session = ModelSession.Load(model, "qlinearconv.onnx", new SessionOptions { Threads = threads });
            var y = session.Run(new Dictionary<string, Tensor> { ["X"] = Bytes(x, c.SignedX, xShape) })["Y"];
            int[] actual = c.SignedX ? y.ToArray<sbyte>().Select(v => (int)v).ToArray() : y.ToArray<byte>().Select(v => (int)v).ToArray();
            Assert.Equal(expected, actual);
        }
    }

    private static Tensor Bytes(int[] values, bool signed, int[] shape) =>
        signed ? Tensor.Create(values.Select(v => (sbyte)v).ToArray(), shape) : Tensor.Create(values.Select(v => (byte)v).ToArray(), shape);

    /// <summary>The definition, directly: every output position, every tap inside the input, in 64-bit integers.</summary>
    private static (int[] Shape, int[] Values) Reference(Case c, int[] x, int[] w, int[] zw)
    {
        int spatial = c.Input.Length, cg = c.Channels / c.Group, mg = c.Outputs / c.Group;
        int[] output = new int[spatial];
        for (int d = 0; d < spatial; d++)
            output[d] = (c.Input[d] + c.Pads[d] + c.Pads[d + spatial] - (c.Dilations[d] * (c.Kernel[d] - 1) + 1)) / c.Strides[d] + 1;
        int inSize = c.Input.Aggregate(1, (a, b) => a * b), outSize = output.Aggregate(1, (a, b) => a * b), taps = c.Kernel.Aggregate(1, (a, b) => a * b);
        var values = new int[c.Batch * c.Outputs * outSize];
        var position = new int[spatial];
        var tap = new int[spatial];
        for (int n = 0; n < c.Batch; n++)
        for (int m = 0; m < c.Outputs; m++)
        for (int o = 0; o < outSize; o++)
        {
            Unravel(o, output, position);
            long sum = 0;
            int group = m / mg;
            for (int ci = 0; ci < cg; ci++)
            for (int t = 0; t < taps; t++)
            {
                Unravel(t, c.Kernel, tap);
                int index = 0;
                bool inside = true;
                for (int d = 0; d < spatial; d++)
                {
                    int at = position[d] * c.Strides[d] - c.Pads[d] + tap[d] * c.Dilations[d];
                    inside &= at >= 0 && at < c.Input[d];
                    index = index * c.Input[d] + at;
                }
                if (!inside) continue;
                int xv = x[(n * c.Channels + group * cg + ci) * inSize + index];
                int wv = w[(m * cg + ci) * taps + t];
                sum += (long)(xv - c.ZeroPointX) * (wv - zw[zw.Length == 1 ? 0 : m]);
            }
            values[(n * c.Outputs + m) * outSize + o] = checked((int)sum);
        }
        return ([c.Batch, c.Outputs, .. output], values);
    }

    private static void Unravel(int index, int[] dims, int[] into)
    {
        for (int d = dims.Length - 1; d >= 0; d--)
        {
            into[d] = index % dims[d];
            index /= dims[d];
        }
    }

    private sealed record Case(int Batch, int Channels, int Outputs, int[] Input, int[] Kernel, int Group, int[] Strides, int[] Dilations, int[] Pads,
        bool SignedX, int ZeroPointX, bool SignedW, bool PerChannel, bool ConstantWeights);

    /// <summary>Reads "Nd: nB cC mM HxW kKxK gG sSxS dDxD pP,... x=u8/ZP w=i8 per-channel const".</summary>
    private static Case Parse(string spec)
    {
        var parts = spec[(spec.IndexOf(':') + 2)..].Split(' ');
        int[] Dims(string text) => text.Split('x').Select(int.Parse).ToArray();
        var x = parts[9][2..].Split('/');
        return new Case(int.Parse(parts[0][1..]), int.Parse(parts[1][1..]), int.Parse(parts[2][1..]), Dims(parts[3]), Dims(parts[4][1..]),
            int.Parse(parts[5][1..]), Dims(parts[6][1..]), Dims(parts[7][1..]), parts[8][1..].Split(',').Select(int.Parse).ToArray(),
            x[0] == "i8", int.Parse(x[1]), parts[10] == "w=i8", parts[11] == "per-channel", parts[12] == "const");
    }
}
