using Quantize.Kernels.Models;
using Quantize.Kernels.Runtime.Operators;

namespace Quantize.Kernels.Runtime.TensorFlow;

/// <summary>
/// TensorFlow's StridedSlice with constant begin, end and strides (attributes here) and its begin, end and shrink-axis
/// masks. Ellipsis and new-axis masks are refused at load.
/// </summary>
[OnnxOperator("StridedSlice", 1, GraphDefTranslator.Domain)]
internal sealed class StridedSliceOperator(long[] begin, long[] end, long[] strides, long beginMask, long endMask, long shrinkMask) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        if (context.Int("ellipsis_mask", 0) != 0 || context.Int("new_axis_mask", 0) != 0)
            throw context.Unsupported("ellipsis and new-axis masks");
        long[] strides = context.Ints("strides") ?? [];
        if (strides.Any(s => s == 0)) throw context.Unsupported("a zero stride");
        return new StridedSliceOperator(context.Ints("begin") ?? [], context.Ints("end") ?? [], strides,
            context.Int("begin_mask", 0), context.Int("end_mask", 0), context.Int("shrink_axis_mask", 0));
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        int rank = x.Rank;
        var starts = new int[rank];
        var steps = new int[rank];
        var counts = new int[rank];
        var outputShape = new List<int>();
        for (int d = 0; d < rank; d++)
        {
            int size = x.Shape[d];
            if (d >= begin.Length)
            {
                starts[d] = 0; steps[d] = 1; counts[d] = size;
                outputShape.Add(size);
                continue;
            }
            int stride = (int)strides[d];
            bool shrink = (shrinkMask >> d & 1) != 0;
            long b = begin[d], e = end[d];
            if (b < 0) b += size;
            if (e < 0) e += size;
            if ((beginMask >> d & 1) != 0) b = stride > 0 ? 0 : size - 1;
            if ((endMask >> d & 1) != 0) e = stride > 0 ? size : -1;
            if (shrink)
            {
                if (b < 0 || b >= size) throw new InvalidOperationException($"{call.Context.Node}: index {begin[d]} is out of range for axis {d} of {x}.");
                e = b + 1;
                stride = 1;
            }
            b = stride > 0 ? Math.Clamp(b, 0, size) : Math.Clamp(b, -1, size - 1);
            e = stride > 0 ? Math.Clamp(e, 0, size) : Math.Clamp(e, -1, size - 1);
            int count = stride > 0 ? (int)Math.Max(0, (e - b + stride - 1) / stride) : (int)Math.Max(0, (b - e - stride - 1) / -stride);
            starts[d] = (int)b; steps[d] = stride; counts[d] = count;
            if (!shrink) outputShape.Add(count);
        }
        var y = call.Output(0, x.ElementType, outputShape.ToArray());
        int total = 1;
        foreach (int c in counts) total *= c;
        var index = new int[rank];
        var source = x.Buffer.Data;
        var target = y.Buffer.Data;
        for (int o = 0; o < total; o++)
        {
            int flat = 0;
            for (int d = 0; d < rank; d++) flat = flat * x.Shape[d] + starts[d] + index[d] * steps[d];
            Array.Copy(source, flat, target, o, 1);
            for (int d = rank - 1; d >= 0; d--)
            {
                if (++index[d] < counts[d]) break;
                index[d] = 0;
            }
        }
    }
}

/// <summary>
/// RandomUniform: floats in [0, 1) of the shape its input gives, from a generator seeded by <c>seed</c> and <c>seed2</c>
/// (fixed when both are 0), so runs repeat. Frozen graphs hold it for dropout, which a keep probability of 1 turns off.
/// </summary>
[OnnxOperator("RandomUniform", 1, GraphDefTranslator.Domain)]
internal sealed class RandomUniformOperator(int seed) : Operator
{
    public static Operator Create(OperatorBuildContext context) =>
        new RandomUniformOperator(HashCode.Combine(context.Int("seed", 0), context.Int("seed2", 0)));

    public override void Run(OperatorCall call)
    {
        var shapeTensor = call.Input(0);
        int[] shape = shapeTensor.ElementType == TensorElementType.Int64
            ? shapeTensor.AsSpan<long>().ToArray().Select(v => checked((int)v)).ToArray()
            : shapeTensor.AsSpan<int>().ToArray();
        var y = call.Output(0, TensorElementType.Float32, shape).AsSpan<float>();
        var random = new Random(seed);
        for (int i = 0; i < y.Length; i++) y[i] = random.NextSingle();
    }
}
