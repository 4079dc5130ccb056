namespace Quantize.Build.Tasks.Tests;

/// <summary>Several builds quantizing the same model at once, and a build killed while quantizing.</summary>
[Collection(BuildCollection.Name)]
public class ConcurrentBuildTests(PackageFixture fixture)
{
    private BuildHarness Harness => fixture.Harness;

    [Fact]
    public void Concurrent_builds_and_a_killed_build_leave_identical_outputs_and_sound_cache_entries()
    {
        string cache = Path.Combine(Harness.Root, "race-cache");
        byte[] model = TestModels.Mlp(21, hidden: 2048);
        var projects = Enumerable.Range(0, 4).Select(i =>
        {
            string folder = Harness.CreateProject($"Race{i}", "<QuantizeModel Include=\"m.onnx\" Mode=\"dynamic\" />",
                $"<QuantizeCacheDirectory>{cache}</QuantizeCacheDirectory>");
            File.WriteAllBytes(Path.Combine(folder, "m.onnx"), model);
            return folder;
        }).ToList();
        string solution = Path.Combine(Harness.Root, "Race.slnx");
        File.WriteAllText(solution, "<Solution>\n" + string.Concat(projects.Select(p => $"  <Project Path=\"{Path.GetFileName(p)}/{Path.GetFileName(p)}.csproj\" />\n")) + "</Solution>\n");

        // Four projects quantizing the same model at once, five times: from a cold cache three times, then from a warm one twice.
        byte[]? reference = null;
        foreach (bool cold in new[] { true, true, true, false, false })
        {
            Reset(projects, cold ? cache : null);
            Harness.Run(Harness.Root, "build", solution, "-m:4", "-v:n", "-tl:off").Succeeded();
            reference ??= File.ReadAllBytes(Output(projects[0]));
            foreach (string project in projects) Assert.Equal(reference, File.ReadAllBytes(Output(project)));
            AssertCacheSound(cache, reference);
        }
        Assert.NotNull(reference);
        EndToEndTests.AssertRunsLikeFloat(Path.Combine(projects[0], "m.onnx"), Output(projects[0]), 0.99);

        // A build killed once the quantizer has started, then an ordinary build: the same bytes, a sound cache.
        Reset(projects, cache);
        var killed = Harness.Run(projects[0], line => line.Contains("msbuild-batch", StringComparison.Ordinal), "build", "-v:n", "-tl:off");
        Assert.Contains("msbuild-batch", killed.Output);
        Harness.Run(projects[0], "build", "-v:n", "-tl:off").Succeeded();
        Assert.Equal(reference, File.ReadAllBytes(Output(projects[0])));
        AssertCacheSound(cache, reference);
    }

    private static string Output(string project) => Path.Combine(project, "bin", "Debug", "net10.0", "m.dynamic.onnx");

    private static void Reset(IEnumerable<string> projects, string? cache)
    {
        foreach (string project in projects)
            foreach (string folder in new[] { "bin", "obj" }.Select(f => Path.Combine(project, f)).Where(Directory.Exists))
                Directory.Delete(folder, recursive: true);
        if (cache is not null && Directory.Exists(cache)) Directory.Delete(cache, recursive: true);
    }

    /// <summary>One entry, equal to the reference, and no temporary file left by any writer.</summary>
    private static void AssertCacheSound(string cache, byte[] reference)
    {
        var entries = Directory.GetFiles(cache, "*.model", SearchOption.AllDirectories);
        Assert.Single(entries);
        Assert.Equal(reference, File.ReadAllBytes(entries[0]));
        Assert.Empty(Directory.GetFiles(cache, "*.tmp", SearchOption.AllDirectories));
    }
}
