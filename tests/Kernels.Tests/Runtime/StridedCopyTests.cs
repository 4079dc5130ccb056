using Quantize.Kernels.Runtime.Operators;

namespace Quantize.Kernels.Tests.Runtime;

/// <summary>The strided copy behind the tensor ops (with its tiled transposing path) against a plain index-by-index copy.</summary>
public class StridedCopyTests
{
    [Fact]
    public void Permuted_broadcast_and_reversed_copies_match_the_reference()
    {
        var random = new Random(11);
        for (int trial = 0; trial < 300; trial++)
        {
            int rank = random.Next(1, 6);
            var shape = Enumerable.Range(0, rank).Select(_ => random.Next(4) == 0 ? 1 : random.Next(1, 40)).ToArray();
            while (shape.Aggregate(1L, (a, b) => a * b) > 200_000) shape[random.Next(rank)] = Math.Max(1, shape[random.Next(rank)] / 2);
            var perm = Enumerable.Range(0, rank).OrderBy(_ => random.Next()).ToArray();
            // The source: the output axes permuted, some broadcast (stride 0), some walked backwards.
            var sourceShape = perm.Select(p => shape[p]).ToArray();
            var sourceStrides = Elements.Strides(sourceShape);
            var srcStrides = new int[rank];
            int offset = 0;
            for (int i = 0; i < rank; i++)
            {
                int axis = Array.IndexOf(perm, i);
                int mode = random.Next(5);
                srcStrides[i] = mode == 0 ? 0 : mode == 1 ? -sourceStrides[axis] : sourceStrides[axis];
                if (mode == 1) offset += (shape[i] - 1) * sourceStrides[axis];
            }
            var src = Enumerable.Range(0, sourceShape.Aggregate(1, (a, b) => a * b)).ToArray();
            int count = shape.Aggregate(1, (a, b) => a * b);
            var actual = new int[count];
            var expected = new int[count];
            StridedCopy.Run<int>(src, offset, srcStrides, actual, 0, Elements.Strides(shape), shape);
            Reference(src, offset, srcStrides, expected, shape);
            Assert.True(expected.AsSpan().SequenceEqual(actual), $"shape [{string.Join(", ", shape)}], strides [{string.Join(", ", srcStrides)}]");
        }
    }

    private static void Reference(int[] src, int offset, int[] strides, int[] dst, int[] shape)
    {
        var index = new int[shape.Length];
        for (int t = 0; t < dst.Length; t++)
        {
            int s = offset;
            for (int d = 0; d < shape.Length; d++) s += index[d] * strides[d];
            dst[t] = src[s];
            for (int d = shape.Length - 1; d >= 0; d--)
            {
                if (++index[d] < shape[d]) break;
                index[d] = 0;
            }
        }
    }
}
