using Quantize.Kernels.Runtime.Operators;

namespace Quantize.Kernels.Tests.Runtime;

/// <summary>
/// Winograd F(2 x 2, 3 x 3) against the direct definition in float64 (with and without a residual added), on odd and even maps, asymmetric pads, blocks that
/// end mid-row and mid-panel; its AVX2 transforms against their scalar twins; identical bits for every thread count.
/// </summary>
public class WinogradConvolutionTests
{
    [Theory]
    [InlineData(1, 1, 1, 1, 1, 1, 1, 1, false, false, false)]
    [InlineData(3, 5, 4, 4, 0, 0, 0, 0, true, false, true)]
    [InlineData(5, 7, 9, 11, 1, 1, 1, 1, true, true, true)]
    [InlineData(16, 24, 20, 37, 1, 1, 1, 1, true, false, false)]
    [InlineData(70, 9, 13, 30, 2, 0, 1, 2, false, true, true)]
    [InlineData(33, 40, 28, 28, 1, 1, 1, 1, true, true, false)]
    [InlineData(2, 3, 3, 50, 0, 2, 2, 0, true, false, true)]
    [InlineData(64, 64, 17, 17, 1, 1, 1, 1, true, true, true)]
    public unsafe void Matches_the_direct_convolution_for_every_thread_count_and_its_scalar_twin(
        int channels, int outputs, int height, int width, int padTop, int padLeft, int padBottom, int padRight, bool withBias, bool relu, bool withResidual)
    {
        var random = new Random(channels * 31 + outputs * 7 + height + width);
        float[] x = Values(random, channels * height * width);
        float[] w = Values(random, outputs * channels * 9);
        float[] bias = withBias ? Values(random, outputs) : [];
        var g = WindowGeometry.Identity(2);
        g.Input[1] = height;
        g.Input[2] = width;
        g.Kernel[1] = g.Kernel[2] = 3;
        g.PadBegin[1] = padTop;
        g.PadBegin[2] = padLeft;
        g.PadEnd[1] = padBottom;
        g.PadEnd[2] = padRight;
        g.Output[1] = height + padTop + padBottom - 2;
        g.Output[2] = width + padLeft + padRight - 2;
        Assert.True(WinogradConvolution.Computes(g));
        float[]? residual = withResidual ? Values(random, outputs * g.Output[1] * g.Output[2]) : null;
        double[] expected = Direct(x, w, bias, residual, relu, channels, outputs, height, width, padTop, padLeft, g.Output[1], g.Output[2]);
        var conv = WinogradConvolution.Create(w, outputs, channels);
        float[]? first = null;
        foreach (bool vectors in new[] { true, false })
        {
            foreach (int threads in new[] { 1, 2, 3 })
            {
                var y = Enumerable.Repeat(float.NaN, expected.Length).ToArray();
                fixed (float* source = x, target = y, added = residual)
                    conv.Run(g, source, target, bias, added, relu, threads, vectors);
                for (int i = 0; i < expected.Length; i++)
                    Assert.True(Math.Abs(y[i] - expected[i]) <= 1e-4 * (1 + Math.Abs(expected[i])), $"element {i} (vectors {vectors}, threads {threads}): {y[i]} vs {expected[i]}");
                if (first is null) first = y;
                else Assert.Equal(first, y);
            }
        }
    }

    [Fact]
    public void The_weight_transform_is_G_g_Gt()
    {
        var random = new Random(5);
        float[] g = Values(random, 9);
        double[,] G = { { 1, 0, 0 }, { 0.5, 0.5, 0.5 }, { 0.5, -0.5, 0.5 }, { 0, 0, 1 } };
        Span<double> u = stackalloc double[16];
        WinogradConvolution.TransformWeights(g, u);
        for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
        {
            double sum = 0;
            for (int r = 0; r < 3; r++)
            for (int s = 0; s < 3; s++)
                sum += G[i, r] * g[r * 3 + s] * G[j, s];
            Assert.Equal(sum, u[i * 4 + j], 12);
        }
    }

    [Fact]
    public void Only_unit_stride_3x3_windows_on_large_maps_take_this_path()
    {
        var g = WindowGeometry.Identity(2);
        g.Input[1] = g.Input[2] = 56;
        g.Kernel[1] = g.Kernel[2] = 3;
        g.PadBegin[1] = g.PadBegin[2] = g.PadEnd[1] = g.PadEnd[2] = 1;
        g.Output[1] = g.Output[2] = 56;
        Assert.True(WinogradConvolution.Worth(g));
        g.Output[1] = g.Output[2] = 7; // 16 tiles
        Assert.False(WinogradConvolution.Worth(g));
        g.Output[1] = g.Output[2] = 56;
        g.Stride[1] = 2;
        Assert.False(WinogradConvolution.Worth(g));
    }

    private static double[] Direct(float[] x, float[] w, float[] bias, float[]? residual, bool relu, int channels, int outputs, int height, int width, int padTop, int padLeft, int outH, int outW)
    {
        var y = new double[outputs * outH * outW];
        for (int m = 0; m < outputs; m++)
        for (int oh = 0; oh < outH; oh++)
        for (int ow = 0; ow < outW; ow++)
        {
            double sum = bias.Length == 0 ? 0 : bias[m];
            for (int c = 0; c < channels; c++)
            for (int kh = 0; kh < 3; kh++)
            for (int kw = 0; kw < 3; kw++)
            {
                int ih = oh - padTop + kh, iw = ow - padLeft + kw;
                if (ih < 0 || ih >= height || iw < 0 || iw >= width) continue;
                sum += (double)x[(c * height + ih) * width + iw] * w[((m * channels + c) * 3 + kh) * 3 + kw];
            }
            int o = (m * outH + oh) * outW + ow;
            if (residual is not null) sum += residual[o];
            y[o] = relu ? Math.Max(sum, 0) : sum;
        }
        return y;
    }

    private static float[] Values(Random random, int count) => Enumerable.Range(0, count).Select(_ => random.NextSingle() * 2 - 1).ToArray();
}
